import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DataLossError, NotFoundError } from '@distri-vault/shared/errors';
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
  it.each(corruptions)('detects %s on read, quarantines the file, and accepts a repair', async (_what, corrupt) => {
    const o = makeObject(new Rng(3), 4096);
    await store.put(F, 'chunk', o.id, o.data);
    const path = store.objectPath(F, 'chunk', o.id);
    await corrupt(path, o.data.length);
    const corrupted = await fs.readFile(path);

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
    await expect(store.stat(F)).resolves.toEqual({ chunks: 1, chunkBytes: 50, manifests: 0, manifestBytes: 0 });
    await expect(store.folders()).resolves.toEqual([F]);
  });
});
