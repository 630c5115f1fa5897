import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { DataLossError, NotFoundError, ResourceExhaustedError } from '@distri-vault/shared/errors';
import { DiskObjectStore } from './disk-object-store';
import { describeObjectStoreCompliance } from './object-store.compliance';
import { Rng, folderId, makeObject } from '../testing/fixtures';

async function tempDir(): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), 'storage-disk-'));
}

// Every entry under the data directory with its inode, mtime (ns) and size: equal snapshots mean nothing
// was created, removed or rewritten, including directories and temp files.
async function snapshotTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await fs.readdir(dir)).sort()) {
      const path = join(dir, name);
      const st = await fs.lstat(path, { bigint: true });
      out.push(`${relative(root, path)}:${st.isDirectory() ? 'd' : 'f'}:${st.ino}:${st.mtimeNs}:${st.size}`);
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk(root);
  return out;
}

describeObjectStoreCompliance('DiskObjectStore', async () => {
  const dir = await tempDir();
  const store = await DiskObjectStore.open({}, { dataDir: join(dir, 'data') });
  return {
    store,
    snapshot: () => snapshotTree(dir),
    cleanup: async () => {
      await store.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
});

describe('DiskObjectStore on disk', () => {
  const F = folderId(1);
  let dir: string;
  let store: DiskObjectStore;
  beforeEach(async () => {
    dir = await tempDir();
    store = await DiskObjectStore.open({}, { dataDir: dir });
  });
  afterEach(async () => {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('lays objects out as <folder>/<chunks|manifests>/<id[0..2]>/<id>', async () => {
    const rng = new Rng(1);
    const c = makeObject(rng, 100);
    const m = makeObject(rng, 200);
    await store.put(F, 'chunk', c.id, c.data);
    await store.put(F, 'manifest', m.id, m.data);
    expect(await fs.readFile(join(dir, F, 'chunks', c.id.slice(0, 2), c.id))).toEqual(c.data);
    expect(await fs.readFile(join(dir, F, 'manifests', m.id.slice(0, 2), m.id))).toEqual(m.data);
    expect(await fs.readdir(join(dir, '.tmp'))).toEqual([]);
  });

  it('leaves no temp file behind after concurrent puts of one ID', async () => {
    const o = makeObject(new Rng(2), 300_000);
    await Promise.all(Array.from({ length: 6 }, () => store.put(F, 'chunk', o.id, o.data)));
    expect(await fs.readdir(join(dir, '.tmp'))).toEqual([]);
    expect(await fs.readdir(join(dir, F, 'chunks', o.id.slice(0, 2)))).toEqual([o.id]);
  });

  const corruptions: Array<[string, (path: string, size: number) => Promise<void>]> = [
    [
      'a flipped byte',
      async (path, size) => {
        const buf = await fs.readFile(path);
        buf[size >> 1] = (buf[size >> 1] as number) ^ 0x40;
        await fs.writeFile(path, buf);
      },
    ],
    ['truncation by one byte', (path, size) => fs.truncate(path, size - 1)],
    ['truncation to zero', (path) => fs.truncate(path, 0)],
    ['one appended byte', (path) => fs.appendFile(path, Buffer.from([0]))],
  ];
  // A store that indexed the folder reads the size it knows (no fstat); a fresh one has not indexed it yet.
  const corruptionCases = corruptions.flatMap(([what, corrupt]) => [
    [what, 'its index built', false, corrupt] as const,
    [what, 'a fresh store (no index yet)', true, corrupt] as const,
  ]);
  it.each(corruptionCases)('detects %s on read with %s, quarantines the file, and accepts a repair', async (_what, _how, reopen, corrupt) => {
    // 256 KiB: above the size hashed on the thread pool.
    const o = makeObject(new Rng(3), 256 * 1024);
    await store.put(F, 'chunk', o.id, o.data);
    const path = store.objectPath(F, 'chunk', o.id);
    await corrupt(path, o.data.length);
    const corrupted = await fs.readFile(path);
    if (reopen) {
      await store.close();
      store = await DiskObjectStore.open({}, { dataDir: dir });
    }

    await expect(store.get(F, 'chunk', o.id)).rejects.toBeInstanceOf(DataLossError);
    await expect(fs.access(path)).rejects.toMatchObject({ code: 'ENOENT' });
    const quarantined = await fs.readdir(join(dir, '.quarantine'));
    expect(quarantined).toHaveLength(1);
    expect(quarantined[0]!.startsWith(`${F}.chunk.${o.id}.`)).toBe(true);
    expect(await fs.readFile(join(dir, '.quarantine', quarantined[0]!))).toEqual(corrupted);

    // The node repairs from a peer by putting the good bytes again.
    await expect(store.has(F, 'chunk', [o.id])).resolves.toEqual([false]);
    await expect(store.put(F, 'chunk', o.id, o.data)).resolves.toEqual({ created: true });
    expect((await store.get(F, 'chunk', o.id)).equals(o.data)).toBe(true);
  });

  it('quarantines an oversize file without reading it whole', async () => {
    const o = makeObject(new Rng(4), 10);
    await store.put(F, 'chunk', o.id, o.data);
    await fs.truncate(store.objectPath(F, 'chunk', o.id), 64 * 1024 * 1024);
    await expect(store.get(F, 'chunk', o.id)).rejects.toBeInstanceOf(DataLossError);
    expect(await fs.readdir(join(dir, '.quarantine'))).toHaveLength(1);
  });

  it('reports an object deleted behind its back as NotFoundError', async () => {
    const o = makeObject(new Rng(5), 10);
    await store.put(F, 'chunk', o.id, o.data);
    await fs.unlink(store.objectPath(F, 'chunk', o.id));
    await expect(store.get(F, 'chunk', o.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.has(F, 'chunk', [o.id])).resolves.toEqual([false]);
    await expect(store.delete(F, 'chunk', o.id)).resolves.toBe(false);
    await fs.rm(join(dir, F), { recursive: true });
    await expect(store.get(F, 'chunk', o.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('quarantines a directory squatting on an object path, whether the index knows the object or not', async () => {
    const rng = new Rng(8);
    const [a, b] = [makeObject(rng, 100), makeObject(rng, 100)];
    await store.put(F, 'chunk', a.id, a.data);
    await store.put(F, 'chunk', b.id, b.data);
    for (const o of [a, b]) {
      await fs.unlink(store.objectPath(F, 'chunk', o.id));
      await fs.mkdir(store.objectPath(F, 'chunk', o.id));
    }
    await expect(store.get(F, 'chunk', a.id)).rejects.toBeInstanceOf(DataLossError);
    const fresh = await DiskObjectStore.open({}, { dataDir: dir });
    await expect(fresh.get(F, 'chunk', b.id)).rejects.toBeInstanceOf(DataLossError);
    expect(await fs.readdir(join(dir, '.quarantine'))).toHaveLength(2);
  });

  it('re-creates directories removed behind its back and writes an indexed object again once its file is gone', async () => {
    const rng = new Rng(9);
    const [a, b] = [makeObject(rng, 100), makeObject(rng, 200)];
    await store.put(F, 'chunk', a.id, a.data);
    await store.put(F, 'chunk', b.id, b.data);
    // The file only: the index still holds the ID, the put must look at the disk and write it again.
    await fs.unlink(store.objectPath(F, 'chunk', a.id));
    await expect(store.put(F, 'chunk', a.id, a.data)).resolves.toEqual({ created: true });
    expect((await store.get(F, 'chunk', a.id)).equals(a.data)).toBe(true);
    // The whole folder: its directories are created (and made durable) again.
    await fs.rm(join(dir, F), { recursive: true });
    await expect(store.put(F, 'chunk', b.id, b.data)).resolves.toEqual({ created: true });
    await expect(store.put(F, 'manifest', a.id, a.data)).resolves.toEqual({ created: true });
    const fresh = await DiskObjectStore.open({}, { dataDir: dir });
    expect((await fresh.get(F, 'chunk', b.id)).equals(b.data)).toBe(true);
    expect((await fresh.get(F, 'manifest', a.id)).equals(a.data)).toBe(true);
    await expect(fresh.stat(F)).resolves.toEqual({ chunks: 1, chunkBytes: 200, manifests: 1, manifestBytes: 100, gcRecords: 0, gcRecordBytes: 0 });
    expect(await fs.readdir(join(dir, '.tmp'))).toEqual([]);
  });

  it('lists from its index: files added behind its back are not listed, files lost behind its back until noticed', async () => {
    const rng = new Rng(10);
    const [a, b, c] = [makeObject(rng, 10), makeObject(rng, 20), makeObject(rng, 30)];
    await store.put(F, 'chunk', a.id, a.data);
    await store.put(F, 'chunk', b.id, b.data);
    const list = async () => {
      const ids: string[] = [];
      for await (const batch of store.list(F, 'chunk')) ids.push(...batch);
      return ids;
    };
    await fs.mkdir(dirname(store.objectPath(F, 'chunk', c.id)), { recursive: true });
    await fs.writeFile(store.objectPath(F, 'chunk', c.id), c.data);
    await fs.unlink(store.objectPath(F, 'chunk', a.id));
    expect(await list()).toEqual([a.id, b.id].sort());
    // A read (or the scrubber) notices the loss; a restart's scan sees the disk as it is.
    await expect(store.get(F, 'chunk', a.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(await list()).toEqual([b.id]);
    const fresh = await DiskObjectStore.open({}, { dataDir: dir });
    const ids: string[] = [];
    for await (const batch of fresh.list(F, 'chunk')) ids.push(...batch);
    expect(ids).toEqual([b.id, c.id].sort());
  });

  it('keeps a paused listing in order while objects are put and deleted between its batches', async () => {
    const rng = new Rng(11);
    const objs = Array.from({ length: 40 }, () => makeObject(rng, 16));
    for (const o of objs.slice(0, 30)) await store.put(F, 'chunk', o.id, o.data);
    const listed: string[] = [];
    let i = 0;
    for await (const batch of store.list(F, 'chunk', { batchSize: 3 })) {
      listed.push(...batch);
      // Between batches: add one object and delete one not yet listed (if any is left).
      const extra = objs[30 + (i % 10)]!;
      await store.put(F, 'chunk', extra.id, extra.data);
      const unlisted = objs.slice(0, 30).find((o) => o.id > listed[listed.length - 1]! && !listed.includes(o.id));
      if (unlisted && i % 2 === 0) await store.delete(F, 'chunk', unlisted.id);
      i++;
    }
    expect(listed).toEqual([...listed].sort());
    expect(new Set(listed).size).toBe(listed.length);
    // Every object present throughout (never deleted, put before the listing) is listed.
    const all = new Set(listed);
    const present = new Set<string>();
    for await (const batch of store.list(F, 'chunk')) for (const id of batch) present.add(id);
    for (const o of objs.slice(0, 30)) if (present.has(o.id)) expect(all.has(o.id)).toBe(true);
  });

  it('reads free space at most about once a second for the reserve check', async () => {
    const fsModule = await import('node:fs');
    const spy = jest.spyOn(fsModule.promises, 'statfs');
    try {
      const reserved = await DiskObjectStore.open({}, { dataDir: dir, reserveBytes: 1024 * 1024 });
      const rng = new Rng(12);
      const started = Date.now();
      for (let i = 0; i < 30; i++) {
        const o = makeObject(rng, 1000);
        await reserved.put(F, 'chunk', o.id, o.data);
      }
      const seconds = (Date.now() - started) / 1000;
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(1);
      expect(spy.mock.calls.length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    } finally {
      spy.mockRestore();
    }
  });

  it('removes leftover temp files at start and keeps stored objects', async () => {
    const o = makeObject(new Rng(6), 1000);
    await store.put(F, 'chunk', o.id, o.data);
    await store.close();
    await fs.writeFile(join(dir, '.tmp', `${o.id}.deadbeef`), o.data.subarray(0, 10));
    await fs.mkdir(join(dir, '.tmp', 'nested'));
    await fs.writeFile(join(dir, '.tmp', 'nested', 'x'), 'partial');
    store = await DiskObjectStore.open({}, { dataDir: dir });
    expect(await fs.readdir(join(dir, '.tmp'))).toEqual([]);
    expect((await store.get(F, 'chunk', o.id)).equals(o.data)).toBe(true);
  });

  it('ignores stray names in the data directory when listing and counting', async () => {
    const o = makeObject(new Rng(7), 50);
    await store.put(F, 'chunk', o.id, o.data);
    const shard = join(dir, F, 'chunks', o.id.slice(0, 2));
    await fs.writeFile(join(shard, 'README'), 'x');
    await fs.writeFile(join(shard, `ff${o.id.slice(2)}`), 'wrong shard');
    await fs.mkdir(join(dir, F, 'chunks', 'zz'));
    await fs.mkdir(join(dir, 'Not-A-Folder'));
    await fs.writeFile(join(dir, folderId(9)), 'a file, not a folder');
    const ids: string[] = [];
    for await (const batch of store.list(F, 'chunk')) ids.push(...batch);
    expect(ids).toEqual([o.id]);
    await expect(store.stat(F)).resolves.toEqual({ chunks: 1, chunkBytes: 50, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
    await expect(store.folders()).resolves.toEqual([F]);
  });
});

describe('DiskObjectStore limits and index', () => {
  const F = folderId(1);
  const G = folderId(2);
  let dir: string;
  const stores: DiskObjectStore[] = [];
  const open = async (options: { folderQuotaBytes?: number; reserveBytes?: number } = {}) => {
    const s = await DiskObjectStore.open({}, { dataDir: dir, ...options });
    stores.push(s);
    return s;
  };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('enforces the folder quota with ResourceExhaustedError, leaves nothing partial, and frees space on delete', async () => {
    const store = await open({ folderQuotaBytes: 10_000 });
    const rng = new Rng(20);
    const a = makeObject(rng, 6000);
    const b = makeObject(rng, 4000);
    const c = makeObject(rng, 1);
    await store.put(F, 'chunk', a.id, a.data);
    await store.put(F, 'manifest', b.id, b.data);
    const before = await snapshotTree(dir);
    await expect(store.put(F, 'chunk', c.id, c.data)).rejects.toBeInstanceOf(ResourceExhaustedError);
    expect(await snapshotTree(dir)).toEqual(before);
    // Another folder has its own quota; a duplicate of a present object is still a success.
    await expect(store.put(G, 'chunk', c.id, c.data)).resolves.toEqual({ created: true });
    await expect(store.put(F, 'chunk', a.id, a.data)).resolves.toEqual({ created: false });
    await store.delete(F, 'chunk', a.id);
    await expect(store.put(F, 'chunk', c.id, c.data)).resolves.toEqual({ created: true });
  });

  it('lets concurrent puts fill the quota but never overshoot it', async () => {
    const store = await open({ folderQuotaBytes: 50_000 });
    const objs = Array.from({ length: 20 }, (_, i) => makeObject(new Rng(100 + i), 5000));
    const results = await Promise.allSettled(objs.map((o) => store.put(F, 'chunk', o.id, o.data)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ResourceExhaustedError);
    await expect(store.stat(F)).resolves.toEqual({ chunks: 10, chunkBytes: 50_000, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
    expect(await fs.readdir(join(dir, '.tmp'))).toEqual([]);
  });

  it('counts objects already on disk against the quota after a restart', async () => {
    const first = await open();
    const a = makeObject(new Rng(21), 8000);
    await first.put(F, 'chunk', a.id, a.data);
    const store = await open({ folderQuotaBytes: 10_000 });
    const b = makeObject(new Rng(22), 2001);
    await expect(store.put(F, 'chunk', b.id, b.data)).rejects.toBeInstanceOf(ResourceExhaustedError);
  });

  it('keeps a reserve of free disk: a put that would eat into it is ResourceExhaustedError and writes nothing', async () => {
    // A reserve larger than any disk simulates a full one with the real free-space check.
    const store = await open({ reserveBytes: Number.MAX_SAFE_INTEGER });
    const o = makeObject(new Rng(23), 100);
    const before = await snapshotTree(dir);
    await expect(store.put(F, 'chunk', o.id, o.data)).rejects.toBeInstanceOf(ResourceExhaustedError);
    expect(await snapshotTree(dir)).toEqual(before);
    const roomy = await open({ reserveBytes: 1024 * 1024 });
    await expect(roomy.put(F, 'chunk', o.id, o.data)).resolves.toEqual({ created: true });
  });

  it('answers stat from its index, which put, delete, quarantine and a missed read keep equal to a fresh scan', async () => {
    const store = await open();
    const rng = new Rng(24);
    const objs = Array.from({ length: 50 }, (_, i) => makeObject(rng, 100 + i));
    for (const o of objs) await store.put(F, 'chunk', o.id, o.data);
    await store.delete(F, 'chunk', objs[0]!.id);
    const corrupt = objs[1]!;
    await fs.truncate(store.objectPath(F, 'chunk', corrupt.id), 3);
    await expect(store.get(F, 'chunk', corrupt.id)).rejects.toBeInstanceOf(DataLossError);
    const gone = objs[2]!;
    await fs.unlink(store.objectPath(F, 'chunk', gone.id));
    await expect(store.get(F, 'chunk', gone.id)).rejects.toBeInstanceOf(NotFoundError);
    const expected = { chunks: 47, chunkBytes: objs.slice(3).reduce((n, o) => n + o.data.length, 0), manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 };
    await expect(store.stat(F)).resolves.toEqual(expected);
    const listed: string[] = [];
    for await (const b of store.list(F, 'chunk')) listed.push(...b);
    expect(listed).toEqual(objs.slice(3).map((o) => o.id).sort());
    const fresh = await open();
    await expect(fresh.stat(F)).resolves.toEqual(expected);
  });
});

describe('DiskObjectStore index snapshot', () => {
  const F = folderId(1);
  // An object whose ID falls in `shard` (searched deterministically).
  const inShard = (rng: Rng, shard: string) => {
    for (;;) {
      const o = makeObject(rng, 50);
      if (o.id.startsWith(shard)) return o;
    }
  };
  const listAll = async (s: DiskObjectStore) => {
    const ids: string[] = [];
    for await (const batch of s.list(F, 'chunk')) ids.push(...batch);
    return ids;
  };

  it('restarts from the snapshot written at close: unchanged shards come from it, changed ones are rescanned', async () => {
    const dir = await tempDir();
    try {
      const rng = new Rng(30);
      const first = await DiskObjectStore.open({}, { dataDir: dir });
      const objs = Array.from({ length: 40 }, () => makeObject(rng, 100));
      for (const o of objs) await first.put(F, 'chunk', o.id, o.data);
      // Age the shard directories past the snapshot's margin for coarse timestamps (a real restart comes
      // later than a test can wait).
      const chunksDir = join(dir, F, 'chunks');
      const past = new Date(Date.now() - 60_000);
      const age = async (shard: string) => fs.utimes(join(chunksDir, shard), past, past);
      for (const s of await fs.readdir(chunksDir)) await age(s);
      await first.close();
      expect(await fs.readdir(join(dir, '.index'))).toEqual([F]);

      // While it is down: a file slipped into shard A with A's mtime put back (a change no mtime shows, so
      // only a store that took A from the snapshot misses it), and a file removed from shard B.
      const [a, b] = [objs[0]!, objs.find((o) => o.id.slice(0, 2) !== objs[0]!.id.slice(0, 2))!];
      const hidden = inShard(rng, a.id.slice(0, 2));
      await fs.writeFile(join(chunksDir, a.id.slice(0, 2), hidden.id), hidden.data);
      await age(a.id.slice(0, 2));
      await fs.unlink(join(chunksDir, b.id.slice(0, 2), b.id));

      const second = await DiskObjectStore.open({}, { dataDir: dir });
      const expected = objs.filter((o) => o !== b).map((o) => o.id).sort();
      expect(await listAll(second)).toEqual(expected);
      await expect(second.stat(F)).resolves.toEqual({ chunks: 39, chunkBytes: 3900, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });

      // A put after the restart changes its shard: a crash now (no close) must not leave the old snapshot
      // trusted for that shard.
      const late = inShard(rng, a.id.slice(0, 2));
      await second.put(F, 'chunk', late.id, late.data);
      const third = await DiskObjectStore.open({}, { dataDir: dir });
      expect(await listAll(third)).toEqual([...expected, hidden.id, late.id].sort());

      // A damaged snapshot is ignored: a full scan.
      await second.close();
      const snap = join(dir, '.index', F);
      const bytes = await fs.readFile(snap);
      bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 1;
      await fs.writeFile(snap, bytes);
      for (const s of await fs.readdir(chunksDir)) await age(s);
      const fourth = await DiskObjectStore.open({}, { dataDir: dir });
      await expect(fourth.stat(F)).resolves.toEqual({ chunks: 41, chunkBytes: 3900 + 100, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('DiskObjectStore index warm-up', () => {
  it('takes puts, deletes and reads while a folder is being scanned, and the index ends equal to a fresh scan', async () => {
    const dir = await tempDir();
    const fsModule = await import('node:fs');
    const realReaddir = fsModule.promises.readdir.bind(fsModule.promises);
    try {
      const F = folderId(1);
      const rng = new Rng(60);
      const old = Array.from({ length: 2000 }, () => makeObject(rng, 20));
      for (const o of old) {
        const path = join(dir, F, 'chunks', o.id.slice(0, 2), o.id);
        await fs.mkdir(dirname(path), { recursive: true });
        await fs.writeFile(path, o.data);
      }
      // Hold the scan after it has listed 100 shard directories, so the calls below meet a half-built index
      // and land in shards it has already listed (where only the deferred entries can make them appear).
      const listed = new Set<string>();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let held!: () => void;
      const holding = new Promise<void>((r) => (held = r));
      const spy = jest.spyOn(fsModule.promises, 'readdir').mockImplementation((async (path: string, ...rest: unknown[]) => {
        const shard = /chunks\/([0-9a-f]{2})$/.exec(String(path))?.[1];
        if (shard && listed.size === 100) {
          held();
          await gate;
        }
        const out = await (realReaddir as (...a: unknown[]) => Promise<unknown>)(path, ...rest);
        if (shard) listed.add(shard);
        return out;
      }) as never);
      const store = await DiskObjectStore.open({}, { dataDir: dir });
      const scan = store.warmIndex();
      await holding;
      const inListed = () => {
        for (;;) {
          const o = makeObject(rng, 30);
          if (listed.has(o.id.slice(0, 2))) return o;
        }
      };
      const fresh = Array.from({ length: 20 }, inListed);
      const deleted = old.filter((o) => listed.has(o.id.slice(0, 2))).slice(0, 20);
      const dupes = old.filter((o) => !deleted.includes(o)).slice(0, 10);
      const results = await Promise.all([
        ...fresh.map((o) => store.put(F, 'chunk', o.id, o.data)),
        ...dupes.map((o) => store.put(F, 'chunk', o.id, o.data)),
        store.get(F, 'chunk', dupes[0]!.id).then((b) => b.equals(dupes[0]!.data)),
      ]);
      expect(results).toEqual([...fresh.map(() => ({ created: true })), ...dupes.map(() => ({ created: false })), true]);
      // Deletes wait for the scan to drop their entries; let it go on meanwhile.
      const deletes = Promise.all(deleted.map((o) => store.delete(F, 'chunk', o.id)));
      release();
      await scan;
      expect(await deletes).toEqual(deleted.map(() => true));
      const want = { chunks: 2000 - 20 + 20, chunkBytes: (2000 - 20) * 20 + 20 * 30, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 };
      await expect(store.stat(F)).resolves.toEqual(want);
      const ids: string[] = [];
      for await (const batch of store.list(F, 'chunk')) ids.push(...batch);
      expect(ids).toEqual([...old.filter((o) => !deleted.includes(o)), ...fresh].map((o) => o.id).sort());
      spy.mockRestore();
      const again = await DiskObjectStore.open({}, { dataDir: dir });
      await expect(again.stat(F)).resolves.toEqual(want);
    } finally {
      jest.restoreAllMocks();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('indexes every folder at once and then answers stat without touching the tree', async () => {
    const dir = await tempDir();
    try {
      const first = await DiskObjectStore.open({}, { dataDir: dir });
      const objs = [folderId(1), folderId(2)].map((f, i) => ({ f, o: makeObject(new Rng(50 + i), 1000 + i) }));
      for (const { f, o } of objs) await first.put(f, 'chunk', o.id, o.data);
      const store = await DiskObjectStore.open({}, { dataDir: dir });
      await expect(store.warmIndex()).resolves.toBe(2);
      // A file added behind the store's back after indexing is not seen: stat reads the index.
      const extra = makeObject(new Rng(52), 10);
      await fs.mkdir(join(dir, folderId(1), 'chunks', extra.id.slice(0, 2)), { recursive: true });
      await fs.writeFile(store.objectPath(folderId(1), 'chunk', extra.id), extra.data);
      await expect(store.stat(folderId(1))).resolves.toEqual({ chunks: 1, chunkBytes: 1000, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
      await expect(store.stat(folderId(2))).resolves.toEqual({ chunks: 1, chunkBytes: 1001, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
