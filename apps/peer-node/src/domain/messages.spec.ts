import { InvalidArgumentError } from '@distri-vault/shared';
import { assertTopic, MAX_MESSAGE_BODY_BYTES, MessageBox, validateIncoming, type PeerMessageData } from './messages';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
let n = 0;
const msg = (over: Partial<PeerMessageData> = {}): PeerMessageData => ({
  id: (++n).toString(16).padStart(32, '0'),
  from: A,
  to: B,
  topic: 'chat',
  body: Buffer.from('hi'),
  sentUnixMs: 1,
  ...over,
});

describe('peer message validation', () => {
  it('accepts a message from the stream peer to this node or to all', () => {
    expect(validateIncoming(msg(), A, B).topic).toBe('chat');
    expect(validateIncoming(msg({ to: '' }), A, B).to).toBe('');
    expect(validateIncoming(msg({ body: Buffer.alloc(MAX_MESSAGE_BODY_BYTES) }), A, B).body.length).toBe(65536);
    for (const t of ['a', 'deploy/v1', 'x.y:z-1_2', 'A'.repeat(64)]) expect(assertTopic(t)).toBe(t);
  });

  it.each([
    ['a bad ID', msg({ id: 'xyz' })],
    ['an uppercase ID', msg({ id: 'A'.repeat(32) })],
    ['a sender other than the stream peer (relayed or forged)', msg({ from: C })],
    ['a message for another node', msg({ to: C })],
    ['a malformed recipient', msg({ to: '../x' })],
    ['an empty topic', msg({ topic: '' })],
    ['a topic with spaces', msg({ topic: 'a b' })],
    ['a topic starting with a dot', msg({ topic: '.hidden' })],
    ['a 65-character topic', msg({ topic: 'a'.repeat(65) })],
    ['a topic with a newline', msg({ topic: 'a\nb' })],
    ['a body over 64 KiB', msg({ body: Buffer.alloc(MAX_MESSAGE_BODY_BYTES + 1) })],
  ])('refuses %s with InvalidArgumentError', (_name, m) => {
    expect(() => validateIncoming(m, A, B)).toThrow(InvalidArgumentError);
  });
});

describe('MessageBox', () => {
  it('deduplicates by ID and keeps the first copy', () => {
    const box = new MessageBox(10);
    const m = msg({ body: Buffer.from('first') });
    expect(box.accept(m, 100)).toBe(true);
    expect(box.accept({ ...m, body: Buffer.from('second') }, 200)).toBe(false);
    const { messages } = box.list();
    expect(messages).toHaveLength(1);
    expect(messages[0]!.body.toString()).toBe('first');
    expect(messages[0]!.receivedUnixMs).toBe(100);
  });

  it('is a bounded ring: the oldest go first', () => {
    const box = new MessageBox(1000);
    const ids: string[] = [];
    for (let i = 0; i < 2500; i++) {
      const m = msg();
      ids.push(m.id);
      box.accept(m, i);
    }
    expect(box.size).toBe(1000);
    expect(box.list({ pageBytes: Infinity }).messages.map((m) => m.id)).toEqual(ids.slice(1500));
  });

  it('is bounded in bytes too, and an over-budget list comes in pages continued by ID', () => {
    const box = new MessageBox(1000, 10 * MAX_MESSAGE_BODY_BYTES);
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) {
      const m = msg({ body: Buffer.alloc(MAX_MESSAGE_BODY_BYTES, i) });
      ids.push(m.id);
      box.accept(m, i);
    }
    expect([box.size, box.totalBytes]).toEqual([10, 10 * MAX_MESSAGE_BODY_BYTES]);
    const seen: string[] = [];
    let after = '';
    let pages = 0;
    do {
      const page = box.list({ afterId: after, pageBytes: 3 * MAX_MESSAGE_BODY_BYTES });
      expect(page.messages.length).toBeLessThanOrEqual(3);
      seen.push(...page.messages.map((m) => m.id));
      after = page.next;
      pages++;
    } while (after);
    expect([seen, pages]).toEqual([ids.slice(5), 4]);
    // One message larger than the page budget still comes (alone), so paging always advances.
    expect(box.list({ pageBytes: 1 }).messages).toHaveLength(1);
    // An evicted (or unknown) ID starts again at the oldest kept.
    expect(box.list({ afterId: ids[0], pageBytes: Infinity }).messages.map((m) => m.id)).toEqual(ids.slice(5));
  });

  it('filters by time received and by topic, oldest first', () => {
    const box = new MessageBox();
    box.accept(msg({ topic: 'a' }), 10);
    box.accept(msg({ topic: 'b' }), 20);
    box.accept(msg({ topic: 'a' }), 30);
    expect(box.list({ sinceUnixMs: 20 }).messages.map((m) => [m.topic, m.receivedUnixMs])).toEqual([['b', 20], ['a', 30]]);
    expect(box.list({ topic: 'a' }).messages.map((m) => m.receivedUnixMs)).toEqual([10, 30]);
    expect(box.list({ sinceUnixMs: 31 })).toEqual({ messages: [], next: '' });
  });
});
