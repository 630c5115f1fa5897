import { createHash } from 'node:crypto';
import { BucketSet, checkSummary, coverageFor, differingBuckets, summarize, summaryBits, SummaryBuilder, SyncDiff, type FolderSummary } from './summary';
import type { ObjectKind } from './ports';

const id = (seed: string) => createHash('sha256').update(seed).digest('hex');

/** A folder as kind -> IDs, listed in batches of 7, in a scrambled order (the summary must not care). */
type Folder = Record<ObjectKind, string[]>;
const lister = (f: Folder) =>
  async function* (kind: ObjectKind) {
    const ids = [...f[kind]].reverse();
    for (let i = 0; i < ids.length; i += 7) yield ids.slice(i, i + 7);
  };

function folder(n: number, tag = ''): Folder {
  return { chunk: Array.from({ length: n }, (_, i) => id(`c${i}${tag}`)), manifest: Array.from({ length: Math.ceil(n / 10) }, (_, i) => id(`m${i}${tag}`)), gc: [] };
}

/**
 * Runs the summary protocol between a requester holding `req` and a responder holding `res`, as the
 * transport does: the responder lists only the covered buckets. Returns what was exchanged and found.
 */
async function exchange(req: Folder, res: Folder) {
  const total = req.chunk.length + req.manifest.length;
  const local = await summarize(summaryBits(total), lister(req));
  const covered = await coverageFor(local, lister(res));
  const diff = new SyncDiff(local);
  const set = diff.cover(local.bits, covered);
  let sent = 0;
  const requesterLacks: string[] = [];
  for (const kind of ['chunk', 'manifest'] as const) {
    const entries = res[kind].filter((x) => set.has(kind, x));
    sent += entries.length;
    diff.offered(kind, entries);
    requesterLacks.push(...entries.filter((x) => !req[kind].includes(x)).map((x) => `${kind}:${x}`));
  }
  const responderLacks = (['chunk', 'manifest', 'gc'] as const).flatMap((kind) => diff.lacking(kind, req[kind]).map((x) => `${kind}:${x}`));
  return { sent, covered: covered.length, requesterLacks: requesterLacks.sort(), responderLacks: responderLacks.sort(), bits: local.bits };
}

const keys = (kind: ObjectKind, ids: string[]) => ids.map((x) => `${kind}:${x}`);

describe('folder summaries', () => {
  it('do not depend on listing order or batching, and differ when one ID differs', async () => {
    const f = folder(300);
    const a = await summarize(8, lister(f));
    const b = new SummaryBuilder(8);
    for (const k of ['manifest', 'chunk'] as const) for (const x of [...f[k]].sort()) b.add(k, x);
    expect(b.build()).toEqual(a);
    expect(a.buckets.reduce((n, x) => n + x.count, 0)).toBe(330);
    const g = { ...f, chunk: [...f.chunk.slice(1), id('other')] };
    expect(differingBuckets(a, await summarize(8, lister(g))).length).toBeGreaterThanOrEqual(1);
    expect(differingBuckets(a, await summarize(8, lister(f)))).toEqual([]);
  });

  it('choose a width of about 16 objects per bucket, within 4..12 bits', () => {
    expect([0, 1, 256, 4096, 65536, 10 ** 7].map(summaryBits)).toEqual([4, 4, 4, 8, 12, 12]);
  });

  it('exchange few entries when two large folders differ by a few objects, and find the difference exactly both ways', async () => {
    const common = folder(5000);
    const req: Folder = { chunk: [...common.chunk, id('only-req-1'), id('only-req-2')], manifest: [...common.manifest, id('only-req-m')], gc: [id('only-req-g')] };
    const res: Folder = { chunk: [...common.chunk.filter((_, i) => i !== 17 && i !== 4000), id('only-res-1')], manifest: common.manifest, gc: [] };
    const r = await exchange(req, res);
    expect(r.requesterLacks).toEqual(keys('chunk', [id('only-res-1')]).sort());
    expect(r.responderLacks).toEqual([...keys('chunk', [id('only-req-1'), id('only-req-2'), common.chunk[17]!, common.chunk[4000]!]), ...keys('manifest', [id('only-req-m')]), ...keys('gc', [id('only-req-g')])].sort());
    // 5,504 objects: at 9 bits (~11 per bucket) at most 7 buckets differ (one a GC record's), so well under 100 entries.
    expect(r.bits).toBe(9);
    expect(r.covered).toBeLessThanOrEqual(7);
    expect(r.sent).toBeLessThan(100);
  });

  it('exchange nothing when the folders are equal', async () => {
    const f = folder(1000);
    expect(await exchange(f, f)).toMatchObject({ sent: 0, covered: 0, requesterLacks: [], responderLacks: [] });
  });

  it('list the whole folder to an empty requester (recovery), keeping nothing on the requester side', async () => {
    const res = folder(400);
    const r = await exchange({ chunk: [], manifest: [], gc: [] }, res);
    expect(r.sent).toBe(440);
    expect(r.requesterLacks).toEqual([...keys('chunk', res.chunk), ...keys('manifest', res.manifest)].sort());
    expect(r.responderLacks).toEqual([]);
  });

  it('find everything the responder lacks when it is empty', async () => {
    const req = folder(50);
    const r = await exchange(req, { chunk: [], manifest: [], gc: [] });
    expect(r.sent).toBe(0);
    expect(r.responderLacks).toEqual([...keys('chunk', req.chunk), ...keys('manifest', req.manifest)].sort());
  });

  it('refuse malformed summaries and entries outside the coverage', async () => {
    const good = await summarize(4, lister(folder(20)));
    const bad: FolderSummary[] = [
      { bits: 3, buckets: [] },
      { bits: 13, buckets: [] },
      { bits: 4, buckets: [{ kind: 'chunk', prefix: 16, count: 1, digest: Buffer.alloc(32) }] },
      { bits: 4, buckets: [{ kind: 'chunk', prefix: 1, count: 0, digest: Buffer.alloc(32) }] },
      { bits: 4, buckets: [{ kind: 'chunk', prefix: 1, count: 1, digest: Buffer.alloc(31) }] },
      { bits: 4, buckets: [good.buckets[0]!, good.buckets[0]!] },
    ];
    for (const s of bad) expect(() => checkSummary(s)).toThrow(RangeError);
    const diff = new SyncDiff(good);
    expect(() => diff.offered('chunk', [id('x')])).toThrow(RangeError);
    expect(() => diff.cover(5, [])).toThrow(RangeError);
    const x = id('x');
    diff.cover(4, [{ kind: 'chunk', prefix: parseInt(x[0]!, 16) }]);
    expect(() => diff.offered('manifest', [x])).toThrow(RangeError);
    expect(() => diff.offered('chunk', ['zz'])).toThrow(RangeError);
    diff.offered('chunk', [x]);
    expect(new BucketSet(4, [{ kind: 'chunk', prefix: parseInt(x[0]!, 16) }]).has('chunk', x)).toBe(true);
  });
});
