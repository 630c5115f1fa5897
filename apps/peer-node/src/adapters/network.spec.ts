/**
 * PeerNetwork over real PeerService servers on loopback (in-process): join through one member, dedupe of
 * a member reachable under two addresses, graceful leave, suspect/down after a crash, messages, DNS
 * discovery with an injected resolver over two loopback addresses, hostile control steps, and a link whose
 * path goes silent (through tools/fault-proxy.cjs).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { InvalidArgumentError, NotFoundError, startGrpcServer, UnavailableError, type RunningServer } from '@distri-vault/shared';
import { PeerServiceService, type HandshakeRequest } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { peerServer } from '../grpc/peer.grpc';
import { MemoryStorage } from '../testing/memory-ports';
import { newSecret, testPeer, type TestPeer } from '../testing/peer-fixtures';
import { peerServerCredentials } from './tls';
import { PeerNetwork } from './network';
import { DnsDiscovery } from './discovery';
import type { PeerLink } from './peer-link';
import { toWire } from './kinds';
import { seeded } from '../testing/bytes';
import { Garbage } from '../domain/garbage';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createFaultProxy } = require('../../../../tools/fault-proxy.cjs');

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const HB = 200; // suspect after 600 ms: generous for one event loop shared by several nodes on a busy machine
const dir = mkdtempSync(join(tmpdir(), 'peer-network-'));
const secret = newSecret();
const peers = new Map<string, TestPeer>();
/** The credentials of test node `name` (created once, so a restarted node keeps its identity). */
async function peerNamed(name: string): Promise<TestPeer> {
  let p = peers.get(name);
  if (!p) peers.set(name, (p = await testPeer(join(dir, name), secret)));
  return p;
}
/** Server ID of test node `name`. */
const ID = (name: string) => peers.get(name)!.identity.serverId;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface TestNode {
  id: string;
  net: PeerNetwork;
  srv: RunningServer;
  storage: MemoryStorage;
  address: string;
  stop(): Promise<void>;
}

const started: TestNode[] = [];

async function startNode(name: string, opts: { host?: string; port?: number; bootstrap?: string[]; advertise?: (port: number) => string } = {}): Promise<TestNode> {
  const peer = await peerNamed(name);
  const id = peer.identity.serverId;
  const net = new PeerNetwork({ serverId: id, heartbeatMs: HB, window: 4, auth: peer.keys, suspectAfterMs: 3 * HB, downAfterMs: 2500 }, log.child({ node: name }));
  const host = opts.host ?? '127.0.0.1';
  const storage = new MemoryStorage();
  const srv = await startGrpcServer({
    host,
    port: opts.port ?? 0,
    log,
    services: [{ name: 'vault.peer.v1.PeerService', definition: PeerServiceService, implementation: peerServer({ log, storage, garbage: new Garbage({ storage, log }), network: net, window: 4, auth: peer.auth }) }],
    credentials: peerServerCredentials(peer.tls),
  });
  net.advertiseAddress = opts.advertise?.(srv.port) ?? `${host}:${srv.port}`;
  net.start(opts.bootstrap ?? []);
  let stopped = false;
  const node: TestNode = {
    id,
    net,
    srv,
    storage,
    address: net.advertiseAddress,
    async stop() {
      if (stopped) return;
      stopped = true;
      net.stop();
      await srv.close(100);
    },
  };
  started.push(node);
  return node;
}

/** Polls until `fn` is true; fails after `ms`. */
async function until(fn: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const states = (n: TestNode) => Object.fromEntries(n.net.members().map((m) => [m.serverId, m.state]));

afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.stop()));
});

describe('PeerNetwork membership', () => {
  it('a node joining through one member becomes known to all, each member once, by server ID', async () => {
    const a = await startNode('a');
    const b = await startNode('b', { bootstrap: [a.address] });
    const c = await startNode('c', { bootstrap: [a.address] });
    const all = [a, b, c];
    const full = (n: TestNode, peers: TestNode[]) =>
      JSON.stringify(states(n)) === JSON.stringify(Object.fromEntries(peers.filter((p) => p !== n).map((p) => [p.id, 'connected']).sort()));
    await until(() => all.every((n) => full(n, all)), 10_000, '3 nodes connected');
    // `localhost:<b's port>` reaches b under a second address: one member, the duplicate link closed.
    const d = await startNode('d', { bootstrap: [`localhost:${b.srv.port}`] });
    all.push(d);
    await until(() => all.every((n) => full(n, all)), 10_000, 'the 4th node known to all');
    await until(() => d.net.pending().length === 0, 5000, 'no unidentified address left');
    const others = [a, b, c].sort((x, y) => (x.id < y.id ? -1 : 1));
    expect(d.net.connected()).toEqual(others.map((n) => n.id));
    expect(d.net.live()).toEqual(others.map((n) => n.id));
    expect(d.net.members().map((m) => m.address)).toEqual(others.map((n) => n.address));
    // d reached b as localhost:P first; b's own address is a second way to the same member: the new
    // link is closed once its welcome names b, and the address is not dialed again while b's link is up.
    const links = () => (d.net as unknown as { links: Map<string, unknown> }).links;
    expect([...links().keys()].sort()).toEqual([a.address, c.address, `localhost:${b.srv.port}`].sort());
    d.net.addAddress(b.address);
    await until(() => links().size === 3 && !links().has(b.address), 5000, 'duplicate link closed');
    d.net.addAddress(b.address);
    expect(links().has(b.address)).toBe(false);
    expect(d.net.pending()).toEqual([]);
    expect(d.net.members().map((m) => m.serverId)).toEqual(others.map((n) => n.id));
    for (const n of all) for (const m of n.net.members()) expect(m.sinceUnixMs).toBeGreaterThan(0);
  });

  it('a graceful leave is seen at once; a crash goes suspect then down; both come back', async () => {
    const a = await startNode('a');
    const b = await startNode('b', { bootstrap: [a.address] });
    const events: string[] = [];
    a.net.onMemberState((id, s) => id === b.id && events.push(s));
    await until(() => a.net.state(b.id) === 'connected' && b.net.state(a.id) === 'connected', 10_000, 'connected');
    await b.net.leave();
    // Only a leave notice makes a member `left` (the events below show no suspect before it).
    await until(() => a.net.state(b.id) === 'left', 2000, 'left');
    // While it shuts down, b accepts no new Handshake: a node dialing it now never sees it connected.
    const late = await startNode('c', { bootstrap: [b.address] });
    await new Promise((r) => setTimeout(r, 1500));
    expect(late.net.state(b.id)).not.toBe('connected');
    expect(late.net.connected()).toEqual([]);
    await late.stop();
    await b.stop();
    await new Promise((r) => setTimeout(r, 3000));
    expect(a.net.state(b.id)).toBe('left'); // timeouts leave a left member alone
    expect(a.net.live()).toEqual([]);
    // b returns on the same port: handshake -> connected.
    const b2 = await startNode('b', { port: b.srv.port, bootstrap: [a.address] });
    await until(() => a.net.state(b.id) === 'connected', 10_000, 'back after leave');
    // A crash (no leave): streams drop silently from a's view of liveness -> suspect, then down.
    await b2.stop();
    await until(() => a.net.state(b.id) === 'suspect', 5000, 'suspect');
    await until(() => a.net.state(b.id) === 'down', 10_000, 'down');
    const b3 = await startNode('b', { port: b.srv.port });
    await until(() => a.net.state(b.id) === 'connected', 10_000, 'back after crash');
    expect(events).toEqual(['connected', 'left', 'connected', 'suspect', 'down', 'connected']);
    await b3.stop();
  });

  it('a member back at a new address is linked there, and its dead old address is dropped', async () => {
    const a = await startNode('a');
    const b = await startNode('b', { bootstrap: [a.address] });
    await until(() => a.net.connected().includes(b.id), 10_000, 'a linked to b'); // a knows b's address as b's
    const links = () => (a.net as unknown as { links: Map<string, unknown> }).links;
    await b.stop();
    const b2 = await startNode('b', { bootstrap: [a.address] }); // another port
    await until(() => a.net.state(b.id) === 'connected' && links().has(b2.address), 10_000, 'linked at the new address');
    expect(a.net.members()).toEqual([expect.objectContaining({ serverId: b.id, address: b2.address, state: 'connected' })]);
    await until(() => !links().has(b.address), 8000, 'old address dropped');
    expect([...links().keys()]).toEqual([b2.address]);
  });
});

describe('PeerNetwork messages', () => {
  it('sends to one member, broadcasts to all, deduplicates, and refuses bad targets', async () => {
    const a = await startNode('a');
    const b = await startNode('b', { bootstrap: [a.address] });
    const c = await startNode('c', { bootstrap: [a.address] });
    await until(() => [a, b, c].every((n) => n.net.live().length === 2), 10_000, 'all connected');
    const one = await a.net.sendMessage(b.id, 'chat/one', Buffer.from('hello b'));
    expect(one.recipients).toEqual([b.id]);
    await until(() => b.net.messages().some((m) => m.id === one.id), 5000, 'b got it');
    expect(b.net.messages().find((m) => m.id === one.id)).toMatchObject({ from: a.id, to: b.id, topic: 'chat/one', body: Buffer.from('hello b') });
    expect(c.net.messages()).toEqual([]);
    const all = await c.net.sendMessage('', 'chat/all', Buffer.from([0, 1, 2]));
    expect(all.recipients).toEqual([a.id, b.id].sort());
    await until(() => a.net.messages(0, 'chat/all').length === 1 && b.net.messages(0, 'chat/all').length === 1, 5000, 'broadcast received');
    expect(a.net.messages(0, 'chat/all')[0]).toMatchObject({ id: all.id, from: c.id, to: '' });
    // The sender keeps its own messages too.
    expect(a.net.messages().map((m) => m.id)).toEqual([one.id, all.id]);
    await peerNamed('z'); // a valid server ID this network has never seen
    await expect(a.net.sendMessage(ID('z'), 't', Buffer.from('x'))).rejects.toBeInstanceOf(NotFoundError);
    await expect(a.net.sendMessage('not-a-server-id', 't', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidArgumentError);
    // One character off: the server ID's check catches the typo (INVALID_ARGUMENT, not NOT_FOUND).
    const typo = b.id.slice(0, 5) + (b.id[5] === 'a' ? 'b' : 'a') + b.id.slice(6);
    await expect(a.net.sendMessage(typo, 't', Buffer.from('x'))).rejects.toThrow(/typo/);
    await expect(a.net.sendMessage(a.id, 't', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(a.net.sendMessage(b.id, 'bad topic', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(a.net.sendMessage(b.id, 't', Buffer.alloc(65537))).rejects.toBeInstanceOf(InvalidArgumentError);
    // A member whose build does not announce `peer-messages` gets none (it would end the stream on one).
    const linkToB = [...(a.net as unknown as { links: Map<string, PeerLink> }).links.values()].find((l) => l.serverId === b.id)!;
    const inboundFromB = (a.net as unknown as { inbound: Map<string, Set<{ capabilities?: string[] }>> }).inbound.get(b.id) ?? new Set();
    const saved = [linkToB.capabilities, [...inboundFromB].map((x) => x.capabilities)] as const;
    linkToB.capabilities = ['session-token', 'tls-binding'];
    for (const x of inboundFromB) x.capabilities = ['session-token', 'tls-binding'];
    await expect(a.net.sendMessage(b.id, 't', Buffer.from('x'))).rejects.toThrow(/without peer messages/);
    expect((await a.net.sendMessage('', 'chat/all2', Buffer.from('y'))).recipients).toEqual([c.id]);
    linkToB.capabilities = saved[0];
    [...inboundFromB].forEach((x, i) => (x.capabilities = saved[1][i]));
    await c.net.leave();
    await until(() => a.net.state(c.id) === 'left', 2000, 'c left');
    await expect(a.net.sendMessage(c.id, 't', Buffer.from('x'))).rejects.toBeInstanceOf(UnavailableError);
  });

  it('refuses a forged or malformed message on the control stream with INVALID_ARGUMENT and keeps nothing', async () => {
    const b = await startNode('b');
    const a = await startNode('a', { bootstrap: [b.address] });
    await peerNamed('c');
    const link = () => (a.net as unknown as { links: Map<string, PeerLink> }).links.get(b.address)!;
    /** Sends `step` on a's authenticated control stream to b; resolves with the status b ends it with. */
    const send = async (step: HandshakeRequest['step']) => {
      await until(() => link().state === 'connected', 10_000, 'a connected to b');
      const call = (link() as unknown as { call: grpc.ClientDuplexStream<HandshakeRequest, unknown> }).call;
      const status = new Promise<number>((r) => call.on('status', (s: grpc.StatusObject) => r(s.code)));
      await link().sendControl({ step });
      return status;
    };
    const m = (over: object): HandshakeRequest['step'] => ({ $case: 'message', value: { id: '0'.repeat(32), from: a.id, to: '', topic: 't', body: Buffer.from('x'), sentUnixMs: 1, ...over } });
    const hello: HandshakeRequest['step'] = { $case: 'hello', value: { protocolVersion: 1, serverId: a.id, advertiseAddress: '', knownPeers: [], publicKey: Buffer.alloc(32), nonce: Buffer.alloc(32), capabilities: [] } };
    for (const bad of [m({ from: ID('c') }), m({ topic: '../etc' }), m({ body: Buffer.alloc(70_000) }), m({ id: 'short' }), m({ to: ID('c') }), hello]) {
      expect(await send(bad)).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect(b.net.messages()).toEqual([]);
    // A good one is kept; the same ID again is dropped (deduplicated), and the stream stays open.
    await until(() => link().state === 'connected', 10_000, 'reconnected');
    await link().sendControl({ step: m({}) });
    await link().sendControl({ step: m({ body: Buffer.from('same ID again') }) });
    await until(() => b.net.messages().length === 1, 5000, 'kept');
    await new Promise((r) => setTimeout(r, 300));
    expect(b.net.messages().map((x) => [x.from, x.body.toString()])).toEqual([[a.id, 'x']]);
    expect(link().state).toBe('connected');
  });
});

describe('DNS discovery', () => {
  it('turns every address of one name into a peer (two nodes on 127.0.0.1:P and 127.0.0.2:P), skipping itself', async () => {
    const a = await startNode('a');
    const port = a.srv.port;
    const b = await startNode('b', { host: '127.0.0.2', port });
    const resolved: string[] = [];
    const resolver = async (host: string) => {
      resolved.push(host);
      return ['127.0.0.2', '127.0.0.1', '127.0.0.3'];
    };
    // c listens on 127.0.0.3:P too, so the name's third address is c itself.
    const c = await startNode('c', { host: '127.0.0.3', port });
    const disco = new DnsDiscovery({ target: `peer-node.example:${port}`, intervalMs: 200, resolve: resolver }, (addrs) => addrs.forEach((x) => c.net.addAddress(x)), log);
    disco.start();
    try {
      await until(() => c.net.live().length === 2, 10_000, 'discovered peers connected');
      expect(c.net.live()).toEqual([a.id, b.id].sort());
      await until(() => a.net.live().includes(c.id) && b.net.live().includes(c.id), 10_000, 'peers know c');
      await until(() => resolved.length >= 3, 5000, 'periodic resolution');
      expect(resolved.every((h) => h === 'peer-node.example')).toBe(true);
      expect(disco.last).toEqual([`127.0.0.1:${port}`, `127.0.0.2:${port}`, `127.0.0.3:${port}`]);
      expect(c.net.members().map((m) => m.serverId)).toEqual([a.id, b.id].sort());
    } finally {
      disco.stop();
    }
  });

  it('resolves a real name (localhost, from the hosts file) with the system resolver', async () => {
    const a = await startNode('a');
    const c = await startNode('c');
    const disco = new DnsDiscovery({ target: `localhost:${a.srv.port}`, intervalMs: 60_000 }, (addrs) => addrs.forEach((x) => c.net.addAddress(x)), log);
    try {
      expect(await disco.once()).toContain(`127.0.0.1:${a.srv.port}`);
      await until(() => c.net.live().includes(a.id), 10_000, 'connected through localhost');
    } finally {
      disco.stop();
    }
  });

  it('logs and survives a name that does not resolve', async () => {
    const disco = new DnsDiscovery({ target: 'no-such-name.invalid:7101', intervalMs: 60_000 }, () => undefined, log);
    expect(await disco.once()).toEqual([]);
    expect(() => new DnsDiscovery({ target: 'x:0', intervalMs: 1 }, () => undefined, log)).toThrow(RangeError);
  });
});

describe('a link whose path goes silent', () => {
  /** The status a client call ends with, and when. */
  const ended = (call: NodeJS.EventEmitter) =>
    new Promise<{ code: number; details: string; at: number }>((resolve) => {
      call.on('error', () => undefined); // the status below is the assertion
      call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details, at: Date.now() }));
    });
  /** The first message of a call. */
  const first = <T>(call: grpc.ClientDuplexStream<never, T>) => new Promise<T>((resolve, reject) => {
    call.once('data', resolve);
    call.once('error', reject);
  });
  /** `p`, or a rejection naming `what` after `ms`. */
  const within = <T>(p: Promise<T>, ms: number, what: string) => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
  };

  it('drops its whole connection: open StoreChunk and GetFile calls fail UNAVAILABLE at once, and it redials a new connection', async () => {
    // b is reachable only through the proxy (it advertises the proxy), so a has no other link to it.
    const proxy = await createFaultProxy();
    const b = await startNode('b', { advertise: (port) => { proxy.setTarget(`127.0.0.1:${port}`); return proxy.address; } });
    try {
      const a = await startNode('a', { bootstrap: [proxy.address] });
      const link = () => (a.net as unknown as { links: Map<string, PeerLink> }).links.get(proxy.address)!;
      await until(() => link()?.state === 'connected' && b.net.state(a.id) === 'connected', 10_000, 'a and b linked, a through the proxy');
      expect([...(a.net as unknown as { links: Map<string, PeerLink> }).links.keys()]).toEqual([proxy.address]);
      const folder = a.id;
      const data = seeded(3000, 7);
      const id = createHash('sha256').update(data).digest('hex');
      await b.storage.put(folder, 'chunk', id, data);

      // Two data calls open on the link: a StoreChunk stream (ready), and a GetFile that answered and stays open.
      const store = link().client.storeChunk();
      const storeEnd = ended(store);
      const ready = first(store);
      store.write({ step: { $case: 'open', value: { senderId: a.id, folder } } });
      expect((await within(ready, 10_000, 'StoreChunk ready')).step?.$case).toBe('ready');
      const get = link().client.getFile();
      const getEnd = ended(get);
      const answer = first(get);
      get.write({ folder, objects: [{ kind: toWire('chunk'), id }] });
      expect((await within(answer, 10_000, 'GetFile answer')).step?.$case).toBe('object');
      const connectionsBefore = proxy.stats.connections;

      // Black hole, both ways: no error ever reaches either end; only the link's silence detection can tell
      // (4 heartbeats, 800 ms here). Without it the calls would wait for the HTTP/2 keepalive (30 s + 10 s).
      const silentAt = Date.now();
      proxy.setFault({ kind: 'drop' });
      const [s1, s2] = await within(Promise.all([storeEnd, getEnd]), 15_000, 'the open calls to end');
      expect([s1.code, s2.code]).toEqual([grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE]);
      expect(Math.max(s1.at, s2.at) - silentAt).toBeLessThan(8_000);
      await until(() => link().state !== 'connected', 5000, 'the link down');

      // Healed: the link dials a new connection (the dead one is gone, not reused), and new calls work.
      proxy.setFault({ kind: 'pass' });
      await until(() => link().state === 'connected', 30_000, 'a linked to b again');
      expect(proxy.stats.connections).toBeGreaterThan(connectionsBefore);
      expect(await within(link().fetch(folder, 'chunk', id), 10_000, 'GetFile after healing')).toEqual(data);
      const more = seeded(5000, 8);
      const moreId = createHash('sha256').update(more).digest('hex');
      const replica = await within(a.net.openReplica(b.id, folder), 10_000, 'StoreChunk after healing');
      await within(replica.send({ kind: 'chunk', id: moreId, data: more }), 10_000, 'acknowledged');
      await replica.close();
      expect(await b.storage.get(folder, 'chunk', moreId)).toEqual(more);
    } finally {
      await proxy.close();
    }
  }, 90_000);
});

describe('a peer that accepts TLS but never answers the handshake', () => {
  it('is dialed again after the handshake step timeout, not left hanging until keepalive', async () => {
    const mute = await peerNamed('mute');
    let hellos = 0;
    const open: grpc.ServerDuplexStream<HandshakeRequest, never>[] = [];
    const srv = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      services: [
        {
          name: 'vault.peer.v1.PeerService',
          definition: PeerServiceService,
          implementation: {
            // Reads the Hello and says nothing: a frozen peer whose TLS still accepts.
            handshake: (call: grpc.ServerDuplexStream<HandshakeRequest, never>) => {
              open.push(call);
              call.on('data', () => hellos++);
              call.on('error', () => undefined);
            },
          },
        },
      ],
      credentials: peerServerCredentials(mute.tls),
    });
    const peer = await peerNamed('dialer');
    const net = new PeerNetwork({ serverId: peer.identity.serverId, heartbeatMs: HB, window: 4, auth: peer.keys, handshakeStepMs: 400 }, log);
    net.advertiseAddress = '127.0.0.1:1';
    try {
      net.start([`127.0.0.1:${srv.port}`]);
      // Each Hello waits 400 ms for a welcome, then the link drops the stream and dials again (backoff from
      // 250 ms): three Hellos arrive within a few seconds; without the timeout there is one.
      await until(() => hellos >= 3, 8_000, 'three handshake attempts');
      expect(net.members().filter((m) => m.state === 'connected')).toEqual([]);
    } finally {
      net.stop();
      for (const c of open) c.end();
      await srv.close(100);
    }
  });
});

describe('a node whose own event loop stalls', () => {
  it('does not take its own stall for a silent peer: the link and the calls on it survive', async () => {
    const b = await startNode('stall-b');
    const a = await startNode('stall-a', { bootstrap: [b.address] });
    try {
      const link = () => (a.net as unknown as { links: Map<string, PeerLink> }).links.get(b.address)!;
      await until(() => link()?.state === 'connected', 10_000, 'a linked to b');
      const call = link().client.storeChunk();
      let status: grpc.StatusObject | undefined;
      call.on('status', (s: grpc.StatusObject) => (status = s));
      call.on('error', () => undefined);
      // 1.5 s without an event loop turn: far past the 800 ms after which a silent link is redialed.
      const until1500 = Date.now() + 1500;
      while (Date.now() < until1500) {
        /* a long synchronous step */
      }
      await new Promise((r) => setTimeout(r, 600)); // several ticks, with the peers' messages read meanwhile
      expect([link().state, status?.details]).toEqual(['connected', undefined]);
      call.cancel();
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
