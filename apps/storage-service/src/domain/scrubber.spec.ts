import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { DataLossError, NotFoundError } from '@distri-vault/shared/errors';
import { DiskObjectStore } from './disk-object-store';
import { Scrubber } from './scrubber';
import { Rng, folderId, makeObject } from '../testing/fixtures';

// A pino logger whose JSON lines land in `lines`.
function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('Scrubber over a DiskObjectStore', () => {
  const F = folderId(1);
  const G = folderId(2);
  let dir: string;
  let store: DiskObjectStore;
  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'storage-scrub-'));
    store = await DiskObjectStore.open({}, { dataDir: dir });
  });
  afterEach(async () => {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('finds every flipped, truncated, extended and deleted object, and only those; reads then never return wrong bytes', async () => {
    const rng = new Rng(30);
    const objs = Array.from({ length: 40 }, (_, i) => makeObject(rng, 1000 + i));
    for (const [i, o] of objs.entries()) await store.put(i % 2 ? F : G, i % 5 === 4 ? 'manifest' : 'chunk', o.id, o.data);
    const where = (i: number) => ({ folder: i % 2 ? F : G, kind: (i % 5 === 4 ? 'manifest' : 'chunk') as 'chunk' | 'manifest' });
    const path = (i: number) => store.objectPath(where(i).folder, where(i).kind, objs[i]!.id);
    // 3: flipped byte, 8: truncated, 14: one byte appended, 21: deleted, 24 (a manifest): flipped.
    for (const i of [3, 24]) {
      const b = await fs.readFile(path(i));
      b[100] = (b[100] as number) ^ 1;
      await fs.writeFile(path(i), b);
    }
    await fs.truncate(path(8), 500);
    await fs.appendFile(path(14), 'x');
    await fs.unlink(path(21));

    const { log, lines } = capture();
    const scrubber = new Scrubber({ target: store, log }, { bytesPerSecond: 0, intervalMs: 0 });
    const pass = await scrubber.runPass();
    expect(pass).toMatchObject({ objectsChecked: 40, corrupt: 4, missing: 1 });
    expect(pass.bytesChecked).toBe(objs.reduce((n, o) => n + o.data.length, 0));
    const found = scrubber.status().problems.map((p) => `${p.folder}/${p.kind}/${p.id}:${p.problem}`).sort();
    const want = [3, 8, 14, 24].map((i) => `${where(i).folder}/${where(i).kind}/${objs[i]!.id}:corrupt`);
    want.push(`${where(21).folder}/${where(21).kind}/${objs[21]!.id}:missing`);
    expect(found).toEqual(want.sort());
    expect(await fs.readdir(join(dir, '.quarantine'))).toHaveLength(4);
    expect(lines.filter((l) => l['msg'] === 'scrub found a bad object')).toHaveLength(5);
    expect(lines.find((l) => l['msg'] === 'scrub pass finished')).toMatchObject({ objectsChecked: 40, corrupt: 4, missing: 1 });
    expect(scrubber.status()).toMatchObject({ passesCompleted: 1, last: { objectsChecked: 40, corrupt: 4, missing: 1 } });

    // Every read is right or an error; the bad ones are gone from stat and listing.
    for (const [i, o] of objs.entries()) {
      const { folder, kind } = where(i);
      const got = store.get(folder, kind, o.id);
      if ([3, 8, 14, 21, 24].includes(i)) await expect(got).rejects.toBeInstanceOf(NotFoundError);
      else expect((await got).equals(o.data)).toBe(true);
    }
    const stF = await store.stat(F);
    const stG = await store.stat(G);
    expect(stF.chunks + stF.manifests + stG.chunks + stG.manifests).toBe(35);
    // A second pass finds nothing new.
    await expect(scrubber.runPass()).resolves.toMatchObject({ objectsChecked: 35, corrupt: 0, missing: 0 });
  });

  it('a corrupt read between passes is DATA_LOSS, never wrong bytes', async () => {
    const o = makeObject(new Rng(31), 5000);
    await store.put(F, 'chunk', o.id, o.data);
    const b = await fs.readFile(store.objectPath(F, 'chunk', o.id));
    b[0] = (b[0] as number) ^ 0x80;
    await fs.writeFile(store.objectPath(F, 'chunk', o.id), b);
    await expect(store.get(F, 'chunk', o.id)).rejects.toBeInstanceOf(DataLossError);
  });

  it('keeps to its rate: 400 KB at 1 MB/s takes at least 0.35 s', async () => {
    const rng = new Rng(32);
    for (let i = 0; i < 8; i++) {
      const o = makeObject(rng, 50_000);
      await store.put(F, 'chunk', o.id, o.data);
    }
    const scrubber = new Scrubber({ target: store }, { bytesPerSecond: 1_000_000, intervalMs: 0 });
    const t0 = performance.now();
    await expect(scrubber.runPass()).resolves.toMatchObject({ objectsChecked: 8, bytesChecked: 400_000 });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350);
  });

  it('runs in the background, exposes its progress while running, and stops promptly', async () => {
    const rng = new Rng(33);
    for (let i = 0; i < 20; i++) {
      const o = makeObject(rng, 10_000);
      await store.put(F, 'chunk', o.id, o.data);
    }
    // 200 KB at 20 KB/s: a pass lasts at least 10 s.
    const scrubber = new Scrubber({ target: store }, { bytesPerSecond: 20_000, intervalMs: 60_000 });
    expect(scrubber.status()).toMatchObject({ enabled: true, passesCompleted: 0 });
    scrubber.start();
    const until = Date.now() + 5000;
    while ((scrubber.status().current?.objectsChecked ?? 0) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const st = scrubber.status();
    expect(st.current?.objectsChecked).toBeGreaterThan(0);
    expect(st.current?.objectsChecked).toBeLessThan(20);
    expect(st.passesCompleted).toBe(0);
    const t0 = performance.now();
    await scrubber.stop();
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(new Scrubber({ target: store }, { bytesPerSecond: 0, intervalMs: 0 }).status().enabled).toBe(false);
  });
});
