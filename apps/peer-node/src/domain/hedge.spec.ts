import { createHash } from 'node:crypto';
import { CancelledError, DataLossError, NotFoundError, UnavailableError } from '@distri-vault/shared';
import { hedgedFetch, holderOrder } from './hedge';
import { rank } from './placement';

const GOOD = Buffer.from('the right bytes');
const ID = createHash('sha256').update(GOOD).digest('hex');
const verify = (d: Buffer) => createHash('sha256').update(d).digest('hex') === ID;

type Behaviour = { delayMs: number; answer: 'good' | 'bad' | 'missing' | 'error' };

/** Fake holders: each answers after its delay, and records when it was asked and whether it was cancelled. */
function holders(spec: Record<string, Behaviour>) {
  const t0 = Date.now();
  const asked: Record<string, number> = {};
  const cancelled: string[] = [];
  const fetch = (h: string, signal: AbortSignal) =>
    new Promise<Buffer | null>((resolve, reject) => {
      asked[h] = Date.now() - t0;
      const b = spec[h]!;
      const timer = setTimeout(() => {
        if (b.answer === 'good') resolve(Buffer.from(GOOD));
        else if (b.answer === 'bad') resolve(Buffer.from('garbage, not the object'));
        else if (b.answer === 'missing') resolve(null);
        else reject(new UnavailableError('down'));
      }, b.delayMs);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        cancelled.push(h);
        reject(new CancelledError('cancelled'));
      });
    });
  return { fetch, asked, cancelled };
}

describe('hedged reads', () => {
  it('asks only the first holder when it answers in time', async () => {
    const h = holders({ a: { delayMs: 5, answer: 'good' }, b: { delayMs: 5, answer: 'good' } });
    const r = await hedgedFetch({ holders: ['a', 'b'], fetch: h.fetch, verify, hedgeMs: 1000 });
    expect([r.holder, r.asked, r.data.equals(GOOD)]).toEqual(['a', 1, true]);
    expect(Object.keys(h.asked)).toEqual(['a']);
  });

  it('asks the next holder when the first is slow, takes the first verified answer and cancels the slow one', async () => {
    const h = holders({ a: { delayMs: 30_000, answer: 'good' }, b: { delayMs: 10, answer: 'good' }, c: { delayMs: 10, answer: 'good' } });
    const started = Date.now();
    const r = await hedgedFetch({ holders: ['a', 'b', 'c'], fetch: h.fetch, verify, hedgeMs: 1000 });
    expect(r.holder).toBe('b');
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(h.asked['b']).toBeGreaterThanOrEqual(990);
    expect(h.asked['c']).toBeUndefined();
    expect(h.cancelled).toEqual(['a']);
  });

  it('skips a holder serving wrong bytes at once (never returned) and fetches elsewhere', async () => {
    const h = holders({ evil: { delayMs: 1, answer: 'bad' }, good: { delayMs: 1, answer: 'good' } });
    const warnings: unknown[] = [];
    const log = { warn: (o: unknown) => warnings.push(o), debug: () => undefined } as never;
    const r = await hedgedFetch({ holders: ['evil', 'good'], fetch: h.fetch, verify, hedgeMs: 10_000, log });
    expect([r.holder, r.data.equals(GOOD)]).toEqual(['good', true]);
    expect(h.asked['good']).toBeLessThan(1000); // not after the hedge delay: the bad answer started it
    expect(warnings).toEqual([expect.objectContaining({ peer: 'evil' })]);
  });

  it('moves past holders that fail or lack the object', async () => {
    const h = holders({ a: { delayMs: 1, answer: 'error' }, b: { delayMs: 1, answer: 'missing' }, c: { delayMs: 1, answer: 'good' } });
    expect((await hedgedFetch({ holders: ['a', 'b', 'c'], fetch: h.fetch, verify, hedgeMs: 10_000 })).holder).toBe('c');
  });

  it('fails with DATA_LOSS when only bad copies exist, NOT_FOUND when none has it, UNAVAILABLE when all fail or none is given', async () => {
    const bad = holders({ a: { delayMs: 1, answer: 'bad' }, b: { delayMs: 1, answer: 'missing' } });
    await expect(hedgedFetch({ holders: ['a', 'b'], fetch: bad.fetch, verify, hedgeMs: 50 })).rejects.toBeInstanceOf(DataLossError);
    const none = holders({ a: { delayMs: 1, answer: 'missing' } });
    await expect(hedgedFetch({ holders: ['a'], fetch: none.fetch, verify, hedgeMs: 50 })).rejects.toBeInstanceOf(NotFoundError);
    const down = holders({ a: { delayMs: 1, answer: 'error' }, b: { delayMs: 1, answer: 'error' } });
    await expect(hedgedFetch({ holders: ['a', 'b'], fetch: down.fetch, verify, hedgeMs: 50 })).rejects.toBeInstanceOf(UnavailableError);
    await expect(hedgedFetch({ holders: [], fetch: down.fetch, verify, hedgeMs: 50 })).rejects.toBeInstanceOf(UnavailableError);
  });

  it('cancels every request when the caller aborts', async () => {
    const h = holders({ a: { delayMs: 5000, answer: 'good' }, b: { delayMs: 5000, answer: 'good' } });
    const ctrl = new AbortController();
    const p = hedgedFetch({ holders: ['a', 'b'], fetch: h.fetch, verify, hedgeMs: 20, signal: ctrl.signal });
    await new Promise((r) => setTimeout(r, 200));
    ctrl.abort();
    await expect(p).rejects.toBeInstanceOf(CancelledError);
    expect(h.cancelled.sort()).toEqual(['a', 'b']);
  });

  it('orders holders by the object\'s placement ranking, the owner left out', () => {
    const peers = ['p1', 'p2', 'p3', 'p4'];
    expect(holderOrder(peers, ID, 'owner')).toEqual(rank(ID, 'owner', peers, false));
    expect(holderOrder([...peers, 'owner'], ID, 'owner')).toEqual(rank(ID, 'owner', peers, false));
    expect([...holderOrder(peers, ID, 'owner')].sort()).toEqual(peers);
    // Different objects, different orders (HRW spreads the load of repair reads).
    const firsts = new Set(Array.from({ length: 64 }, (_, i) => holderOrder(peers, createHash('sha256').update(`obj-${i}`).digest('hex'), 'owner')[0]));
    expect(firsts.size).toBe(4);
  });
});
