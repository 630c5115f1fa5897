/**
 * The compliance suite every ObjectStore must pass. Each implementation's spec calls
 * `describeObjectStoreCompliance` with a factory; the suite only uses the ObjectStore interface plus a
 * `snapshot` of the store's backing state, which proves that rejected or duplicate writes changed nothing.
 */
import { CancelledError, DataLossError, InvalidArgumentError, NotFoundError } from '@distri-vault/shared/errors';
import { MAX_CHUNK_OBJECT_BYTES, MAX_OBJECT_BYTES } from '@distri-vault/shared/grpc/options';
import { MAX_HAS_IDS, MAX_LIST_BATCH, type ObjectKind, type ObjectStore } from './object-store';
import { Rng, type TestObject, folderId, forEachLimit, makeObject, objectsWithPrefix } from '../testing/fixtures';

/** A store under test and what the suite needs around it. */
export interface StoreHarness {
  /** The store, fresh and empty. */
  store: ObjectStore;
  /** A description of all backing state (files with inode and mtime, or entries with generations). */
  snapshot(): Promise<string[]>;
  /** Closes the store and removes what it created. */
  cleanup(): Promise<void>;
}

async function collect(it: AsyncIterable<string[]>): Promise<string[][]> {
  const out: string[][] = [];
  for await (const batch of it) out.push(batch);
  return out;
}

/** Defines the ObjectStore compliance tests for one implementation. */
export function describeObjectStoreCompliance(name: string, create: () => Promise<StoreHarness>): void {
  const F = folderId(1);
  const G = folderId(2);
  describe(`ObjectStore compliance: ${name}`, () => {
    let h: StoreHarness;
    let store: ObjectStore;
    beforeEach(async () => {
      h = await create();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    const chunkSizes = [0, 1, 4095, 4096, 4097, MAX_CHUNK_OBJECT_BYTES - 1, MAX_CHUNK_OBJECT_BYTES];
    it.each(chunkSizes)('round-trips a chunk of %i bytes', async (size) => {
      const o = makeObject(new Rng(size + 1), size);
      await expect(store.put(F, 'chunk', o.id, o.data)).resolves.toEqual({ created: true });
      const back = await store.get(F, 'chunk', o.id);
      expect(back.equals(o.data)).toBe(true);
      await expect(store.has(F, 'chunk', [o.id])).resolves.toEqual([true]);
    }, 30_000);

    it.each([MAX_CHUNK_OBJECT_BYTES + 1, MAX_OBJECT_BYTES])('round-trips a manifest of %i bytes', async (size) => {
      const o = makeObject(new Rng(size), size);
      await expect(store.put(F, 'manifest', o.id, o.data)).resolves.toEqual({ created: true });
      expect((await store.get(F, 'manifest', o.id)).equals(o.data)).toBe(true);
    }, 30_000);

    it('keeps GC records as a third kind: put, duplicate, get, has, list, stat, delete, apart from chunks with the same ID', async () => {
      const rng = new Rng(21);
      const r = makeObject(rng, 300);
      await expect(store.put(F, 'gc', r.id, r.data)).resolves.toEqual({ created: true });
      await expect(store.put(F, 'gc', r.id, r.data)).resolves.toEqual({ created: false });
      expect((await store.get(F, 'gc', r.id)).equals(r.data)).toBe(true);
      await expect(store.has(F, 'gc', [r.id])).resolves.toEqual([true]);
      await expect(store.has(F, 'chunk', [r.id])).resolves.toEqual([false]);
      await expect(collect(store.list(F, 'gc'))).resolves.toEqual([[r.id]]);
      await expect(collect(store.list(F, 'chunk'))).resolves.toEqual([]);
      await expect(store.stat(F)).resolves.toEqual({ chunks: 0, chunkBytes: 0, manifests: 0, manifestBytes: 0, gcRecords: 1, gcRecordBytes: 300 });
      const bad = makeObject(rng, 10);
      await expect(store.put(F, 'gc', r.id, bad.data)).rejects.toBeInstanceOf(DataLossError);
      await expect(store.delete(F, 'gc', r.id)).resolves.toBe(true);
      await expect(store.get(F, 'gc', r.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.stat(F)).resolves.toMatchObject({ gcRecords: 0, gcRecordBytes: 0 });
    });

    it.each<[ObjectKind, number]>([
      ['chunk', MAX_CHUNK_OBJECT_BYTES + 1],
      ['manifest', MAX_OBJECT_BYTES + 1],
      ['gc', MAX_OBJECT_BYTES + 1],
    ])('rejects a %s of %i bytes (one over the limit) and writes nothing', async (kind, size) => {
      const o = makeObject(new Rng(7), size);
      const before = await h.snapshot();
      await expect(store.put(F, kind, o.id, o.data)).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await h.snapshot()).toEqual(before);
    }, 30_000);

    it('keeps chunks and manifests and folders apart', async () => {
      const o = makeObject(new Rng(3), 100);
      await store.put(F, 'chunk', o.id, o.data);
      await expect(store.get(F, 'manifest', o.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.get(G, 'chunk', o.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.has(F, 'manifest', [o.id])).resolves.toEqual([false]);
    });

    it('treats a duplicate put as a success that rewrites nothing', async () => {
      const o = makeObject(new Rng(4), 5000);
      await store.put(F, 'chunk', o.id, o.data);
      const before = await h.snapshot();
      await expect(store.put(F, 'chunk', o.id, o.data)).resolves.toEqual({ created: false });
      expect(await h.snapshot()).toEqual(before);
    });

    it('lets exactly one of several concurrent puts of one ID create it', async () => {
      const o = makeObject(new Rng(5), 64 * 1024);
      const results = await Promise.all(Array.from({ length: 8 }, () => store.put(F, 'chunk', o.id, Buffer.from(o.data))));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect((await store.get(F, 'chunk', o.id)).equals(o.data)).toBe(true);
      expect((await collect(store.list(F, 'chunk'))).flat()).toEqual([o.id]);
    });

    it('stores many concurrent puts of different IDs in one new shard', async () => {
      const objs = objectsWithPrefix(new Rng(6), 'c3', 12);
      const results = await Promise.all(objs.map((o) => store.put(G, 'manifest', o.id, o.data)));
      expect(results.every((r) => r.created)).toBe(true);
      for (const o of objs) expect((await store.get(G, 'manifest', o.id)).equals(o.data)).toBe(true);
    });

    it('rejects bytes that do not match the ID with DataLossError and writes nothing', async () => {
      const o = makeObject(new Rng(8), 1000);
      const other = makeObject(new Rng(9), 1000);
      const before = await h.snapshot();
      await expect(store.put(F, 'chunk', other.id, o.data)).rejects.toBeInstanceOf(DataLossError);
      const flipped = Buffer.from(o.data);
      flipped[500] = (flipped[500] as number) ^ 1;
      await expect(store.put(F, 'chunk', o.id, flipped)).rejects.toBeInstanceOf(DataLossError);
      expect(await h.snapshot()).toEqual(before);
      await expect(store.has(F, 'chunk', [o.id, other.id])).resolves.toEqual([false, false]);
    });

    describe('rejects malformed folders, kinds and IDs with InvalidArgumentError, creating nothing', () => {
      const good = makeObject(new Rng(10), 10);
      const badFolders = ['', '..', '.', '../x', `../${F}`, `${F}/..`, '/etc', `/${F}`, F.toUpperCase(), `${F.slice(0, 31)}A`, F.slice(0, 31), `${F}a`, `${F.slice(0, 31)}1`, `${F.slice(0, 30)}/x`, `${F.slice(0, 31)}\0`];
      const badIds = ['', '..', '.', '../x', '/etc/passwd', good.id.toUpperCase(), `${good.id.slice(0, 63)}G`, good.id.slice(0, 63), `${good.id}0`, `../${good.id.slice(3)}`, `${good.id.slice(0, 62)}/.`, `${good.id.slice(0, 63)}\n`];
      const badKinds = ['', 'chunks', 'CHUNK', 'Chunk', 'manifests', undefined, 0, 1, null, '../chunk'];

      async function expectRejected(attempt: () => Promise<unknown>): Promise<void> {
        await expect(attempt()).rejects.toBeInstanceOf(InvalidArgumentError);
      }

      it.each(badFolders)('folder %j', async (folder) => {
        const before = await h.snapshot();
        await expectRejected(() => store.put(folder, 'chunk', good.id, good.data));
        await expectRejected(() => store.get(folder, 'chunk', good.id));
        await expectRejected(() => store.has(folder, 'chunk', [good.id]));
        await expectRejected(() => collect(store.list(folder, 'chunk')));
        await expectRejected(() => store.delete(folder, 'chunk', good.id));
        await expectRejected(() => store.stat(folder));
        expect(await h.snapshot()).toEqual(before);
      });

      it.each(badIds)('id %j', async (id) => {
        await store.put(F, 'chunk', good.id, good.data);
        const before = await h.snapshot();
        await expectRejected(() => store.put(F, 'chunk', id, good.data));
        await expectRejected(() => store.get(F, 'chunk', id));
        await expectRejected(() => store.has(F, 'chunk', [good.id, id]));
        await expectRejected(() => collect(store.list(F, 'chunk', { startAfter: id === '' ? '..' : id })));
        await expectRejected(() => store.delete(F, 'chunk', id));
        expect(await h.snapshot()).toEqual(before);
      });

      it.each(badKinds)('kind %j', async (kind) => {
        const k = kind as unknown as ObjectKind;
        const before = await h.snapshot();
        await expectRejected(() => store.put(F, k, good.id, good.data));
        await expectRejected(() => store.get(F, k, good.id));
        await expectRejected(() => store.has(F, k, [good.id]));
        await expectRejected(() => collect(store.list(F, k)));
        await expectRejected(() => store.delete(F, k, good.id));
        expect(await h.snapshot()).toEqual(before);
      });

      it('data that is not bytes', async () => {
        const before = await h.snapshot();
        await expectRejected(() => store.put(F, 'chunk', good.id, good.data.toString('hex') as unknown as Uint8Array));
        expect(await h.snapshot()).toEqual(before);
      });

      it(`more than ${MAX_HAS_IDS} IDs in one has (and accepts exactly ${MAX_HAS_IDS})`, async () => {
        await store.put(F, 'chunk', good.id, good.data);
        const ids = Array.from({ length: MAX_HAS_IDS }, (_, i) => (i === 1234 ? good.id : i.toString(16).padStart(64, '0')));
        const flags = await store.has(F, 'chunk', ids);
        expect(flags).toHaveLength(MAX_HAS_IDS);
        expect(flags.filter(Boolean)).toHaveLength(1);
        expect(flags[1234]).toBe(true);
        await expectRejected(() => store.has(F, 'chunk', [...ids, good.id]));
      });

      it('list batch sizes outside 1..1000', async () => {
        await expectRejected(() => collect(store.list(F, 'chunk', { batchSize: 0 })));
        await expectRejected(() => collect(store.list(F, 'chunk', { batchSize: MAX_LIST_BATCH + 1 })));
        await expectRejected(() => collect(store.list(F, 'chunk', { batchSize: 1.5 })));
      });
    });

    it('deletes, reports absence, and accepts the object again', async () => {
      const o = makeObject(new Rng(11), 300);
      await store.put(F, 'chunk', o.id, o.data);
      await expect(store.delete(F, 'chunk', o.id)).resolves.toBe(true);
      await expect(store.get(F, 'chunk', o.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.has(F, 'chunk', [o.id])).resolves.toEqual([false]);
      await expect(store.delete(F, 'chunk', o.id)).resolves.toBe(false);
      expect((await collect(store.list(F, 'chunk'))).flat()).toEqual([]);
      await expect(store.put(F, 'chunk', o.id, o.data)).resolves.toEqual({ created: true });
    });

    // Decision: the store deletes exactly the object named and never cascades or refuses. It cannot see
    // which chunks a manifest references (manifests are encrypted), so reference tracking belongs to the
    // peer-node, which must delete a chunk only once no kept manifest of its folder lists it.
    it('deletes only the object named: no cascade to chunks a manifest references, no refusal', async () => {
      const rng = new Rng(15);
      const chunk = makeObject(rng, 500);
      const v1 = makeObject(rng, 60);
      const v2 = makeObject(rng, 61);
      for (const folder of [F, G]) await store.put(folder, 'chunk', chunk.id, chunk.data);
      await store.put(F, 'manifest', v1.id, v1.data);
      await store.put(F, 'manifest', v2.id, v2.data);
      await expect(store.delete(F, 'manifest', v1.id)).resolves.toBe(true);
      expect((await store.get(F, 'chunk', chunk.id)).equals(chunk.data)).toBe(true);
      expect((await store.get(F, 'manifest', v2.id)).equals(v2.data)).toBe(true);
      await expect(store.delete(F, 'chunk', chunk.id)).resolves.toBe(true);
      await expect(store.get(F, 'chunk', chunk.id)).rejects.toBeInstanceOf(NotFoundError);
      expect((await store.get(F, 'manifest', v2.id)).equals(v2.data)).toBe(true);
      expect((await store.get(G, 'chunk', chunk.id)).equals(chunk.data)).toBe(true);
      await expect(store.stat(F)).resolves.toEqual({ chunks: 0, chunkBytes: 0, manifests: 1, manifestBytes: 61, gcRecords: 0, gcRecordBytes: 0 });
      await expect(store.stat(G)).resolves.toEqual({ chunks: 1, chunkBytes: 500, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
    });

    it('gets an absent object as NotFoundError', async () => {
      const o = makeObject(new Rng(12), 10);
      await expect(store.get(F, 'chunk', o.id)).rejects.toBeInstanceOf(NotFoundError);
    });

    it('stats folders and lists them sorted', async () => {
      await expect(store.folders()).resolves.toEqual([]);
      await expect(store.stat(F)).resolves.toEqual({ chunks: 0, chunkBytes: 0, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
      const rng = new Rng(13);
      const chunks = [0, 1, 1000].map((n) => makeObject(rng, n));
      const manifest = makeObject(rng, 777);
      for (const c of chunks) await store.put(G, 'chunk', c.id, c.data);
      await store.put(G, 'manifest', manifest.id, manifest.data);
      await store.put(F, 'chunk', chunks[2]!.id, chunks[2]!.data);
      await expect(store.stat(G)).resolves.toEqual({ chunks: 3, chunkBytes: 1001, manifests: 1, manifestBytes: 777, gcRecords: 0, gcRecordBytes: 0 });
      await expect(store.stat(F)).resolves.toEqual({ chunks: 1, chunkBytes: 1000, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
      await expect(store.folders()).resolves.toEqual([F, G].sort());
    });

    it('streams nothing for an absent folder', async () => {
      await expect(collect(store.list(F, 'chunk'))).resolves.toEqual([]);
      await expect(collect(store.list(F, 'manifest', { startAfter: 'a'.repeat(64) }))).resolves.toEqual([]);
    });

    it('rejects an already aborted put with CancelledError and writes nothing', async () => {
      const o = makeObject(new Rng(14), 10);
      const ctrl = new AbortController();
      ctrl.abort();
      const before = await h.snapshot();
      await expect(store.put(F, 'chunk', o.id, o.data, { signal: ctrl.signal })).rejects.toBeInstanceOf(CancelledError);
      expect(await h.snapshot()).toEqual(before);
    });

  });

  describe(`ObjectStore compliance: ${name}, listing more than one batch`, () => {
    // 600 objects spread over the shards plus 1,001 in shard '7f', so one shard alone exceeds a batch.
    let h: StoreHarness;
    let store: ObjectStore;
    let objects: TestObject[];
    let ids: string[];
    let manifestIds: string[];
    beforeAll(async () => {
      h = await create();
      store = h.store;
      const rng = new Rng(2024);
      objects = [...Array.from({ length: 600 }, () => makeObject(rng, 16)), ...objectsWithPrefix(rng, '7f', 1001)];
      await forEachLimit(objects, 16, (o) => store.put(F, 'chunk', o.id, o.data));
      const manifests = Array.from({ length: 5 }, () => makeObject(rng, 40));
      for (const m of manifests) await store.put(F, 'manifest', m.id, m.data);
      ids = [...new Set(objects.map((o) => o.id))].sort();
      manifestIds = manifests.map((m) => m.id).sort();
    }, 180_000);
    afterAll(async () => {
      await h?.cleanup();
    });

    it('lists every ID once, ascending, in batches of at most 1,000', async () => {
      expect(ids.length).toBeGreaterThan(MAX_LIST_BATCH);
      const batches = await collect(store.list(F, 'chunk'));
      expect(batches.map((b) => b.length)).toEqual([MAX_LIST_BATCH, ids.length - MAX_LIST_BATCH]);
      expect(batches.flat()).toEqual(ids);
      expect((await collect(store.list(F, 'manifest'))).flat()).toEqual(manifestIds);
    });

    it('resumes after start_after, present or not', async () => {
      expect((await collect(store.list(F, 'chunk', { startAfter: ids[999] }))).flat()).toEqual(ids.slice(1000));
      expect((await collect(store.list(F, 'chunk', { startAfter: ids[ids.length - 1] }))).flat()).toEqual([]);
      expect((await collect(store.list(F, 'chunk', { startAfter: '0'.repeat(64) }))).flat()).toEqual(ids);
      expect((await collect(store.list(F, 'chunk', { startAfter: 'f'.repeat(64) }))).flat()).toEqual([]);
      // An ID between two stored ones, inside the full shard.
      const inShard = ids.filter((id) => id.startsWith('7f'));
      const between = `${inShard[500]!.slice(0, 63)}${inShard[500]!.endsWith('0') ? '1' : '0'}`;
      expect((await collect(store.list(F, 'chunk', { startAfter: between }))).flat()).toEqual(ids.filter((id) => id > between));
    });

    it('pages through everything by resuming from each batch end', async () => {
      const seen: string[] = [];
      let startAfter = '';
      for (;;) {
        const it = store.list(F, 'chunk', { startAfter, batchSize: 333 })[Symbol.asyncIterator]();
        const first = await it.next();
        await it.return?.();
        if (first.done) break;
        expect(first.value.length).toBeLessThanOrEqual(333);
        seen.push(...first.value);
        startAfter = first.value[first.value.length - 1]!;
      }
      expect(seen).toEqual(ids);
    });

    it('stops listing when aborted', async () => {
      const ctrl = new AbortController();
      const got: string[][] = [];
      const run = async () => {
        for await (const batch of store.list(F, 'chunk', { batchSize: 100, signal: ctrl.signal })) {
          got.push(batch);
          ctrl.abort();
        }
      };
      await expect(run()).rejects.toBeInstanceOf(CancelledError);
      expect(got).toHaveLength(1);
    });
  });
}
