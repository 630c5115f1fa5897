import { Membership, type MemberState } from './membership';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

/** A membership over a fake clock, recording every state change. */
function setup(suspectAfterMs = 300, downAfterMs = 1000) {
  let now = 1_000_000;
  const m = new Membership({ suspectAfterMs, downAfterMs, now: () => now });
  const changes: [string, MemberState, MemberState | undefined][] = [];
  m.onState((id, s, prev) => changes.push([id, s, prev]));
  const advance = (ms: number) => {
    now += ms;
    m.tick();
  };
  return { m, changes, advance, now: () => now };
}

describe('Membership (fake clock)', () => {
  it('connected -> suspect -> down on silence, back to connected when heard again', () => {
    const { m, changes, advance, now } = setup();
    m.handshake(A, '127.0.0.1:1');
    expect(m.state(A)).toBe('connected');
    const t0 = now();
    advance(300);
    expect(m.state(A)).toBe('connected'); // exactly the timeout is not past it
    advance(1);
    expect(m.state(A)).toBe('suspect');
    expect(m.members()[0]).toMatchObject({ serverId: A, state: 'suspect', lastSeenUnixMs: t0, sinceUnixMs: now() });
    expect(m.live()).toEqual([A]); // suspect still counts as live for placement
    advance(700);
    expect(m.state(A)).toBe('down');
    expect(m.live()).toEqual([]);
    advance(10_000);
    expect(m.state(A)).toBe('down');
    m.heard(A);
    expect(m.state(A)).toBe('connected');
    expect(m.members()[0]).toMatchObject({ lastSeenUnixMs: now(), sinceUnixMs: now() });
    expect(changes.map(([, s, p]) => `${p}->${s}`)).toEqual(['undefined->connected', 'connected->suspect', 'suspect->down', 'down->connected']);
  });

  it('heartbeats keep a member connected; since changes only with the state', () => {
    const { m, advance } = setup();
    m.handshake(A, 'x:1');
    const since = m.members()[0]!.sinceUnixMs;
    for (let i = 0; i < 50; i++) {
      advance(250);
      m.heard(A);
    }
    expect(m.state(A)).toBe('connected');
    expect(m.members()[0]!.sinceUnixMs).toBe(since);
  });

  it('suspect back to connected on a heartbeat', () => {
    const { m, advance } = setup();
    m.handshake(A, 'x:1');
    advance(400);
    expect(m.state(A)).toBe('suspect');
    m.heard(A);
    expect(m.state(A)).toBe('connected');
  });

  it('left at once on a leave notice; late heartbeats do not revive it, a handshake does; timeouts leave it alone', () => {
    const { m, changes, advance } = setup();
    m.handshake(A, 'x:1');
    m.leave(A);
    expect(m.state(A)).toBe('left');
    m.heard(A);
    expect(m.state(A)).toBe('left');
    advance(100_000);
    expect(m.state(A)).toBe('left');
    expect(m.live()).toEqual([]);
    m.handshake(A, 'x:2');
    expect(m.state(A)).toBe('connected');
    expect(m.members()[0]!.address).toBe('x:2');
    expect(changes.map(([, s]) => s)).toEqual(['connected', 'left', 'connected']);
  });

  it('a member learned from a list is connecting until contact, and down if never heard', () => {
    const { m, advance } = setup();
    m.known(B, 'y:1');
    expect(m.state(B)).toBe('connecting');
    expect(m.live()).toEqual([]);
    m.known(B, 'y:other'); // a second mention changes nothing
    expect(m.members()[0]).toMatchObject({ address: 'y:1', state: 'connecting', lastSeenUnixMs: 0 });
    advance(999);
    expect(m.state(B)).toBe('connecting');
    advance(2);
    expect(m.state(B)).toBe('down');
    m.handshake(B, 'y:1');
    expect(m.state(B)).toBe('connected');
  });

  it('known() does not demote a connected member; heard() ignores strangers; sorted by server ID', () => {
    const { m } = setup();
    m.handshake(B, 'b:1');
    m.handshake(A, 'a:1');
    m.known(A, 'a:9');
    m.heard('c'.repeat(32));
    expect(m.members().map((x) => [x.serverId, x.state])).toEqual([
      [A, 'connected'],
      [B, 'connected'],
    ]);
    expect(m.state('c'.repeat(32))).toBeUndefined();
  });

  it('refuses timeouts that cannot work', () => {
    expect(() => new Membership({ suspectAfterMs: 1000, downAfterMs: 1000 })).toThrow(RangeError);
    expect(() => new Membership({ suspectAfterMs: 0, downAfterMs: 10 })).toThrow(RangeError);
  });

  it('unsubscribes listeners', () => {
    const { m } = setup();
    const seen: string[] = [];
    const off = m.onState((_id, s) => seen.push(s));
    m.handshake(A, 'x:1');
    off();
    m.leave(A);
    expect(seen).toEqual(['connected']);
  });
});
