#!/usr/bin/env node
// `node bench/storage.mjs`: the storage-service against raw Node file I/O and against the bare gRPC transport,
// on the same disk, in one run.
//   1. put and get of 1 MiB chunks and 4 MiB objects (sent as manifests: a chunk is at most 1 MiB + 1 KiB),
//      and 4 KiB puts per second. Three contestants, same objects, same number of calls in flight:
//        raw        this process writes temp file, fsync, rename, fsync of the directory (reads: readFile);
//        service    the storage-service process (verifies SHA-256, same durability steps, its bookkeeping);
//        transport  a no-op server with the same gRPC stack (startGrpcServer, bulk codecs, the same handlers) that
//                   keeps puts in a Map and answers gets from it: the ceiling of gRPC alone on this machine.
//      Each is measured twice: over the Objects stream with the peer-node's own StoragePort (StorageServiceAdapter,
//      what nodes use) and with unary PutObject/GetObject calls (createClient of libs/shared: channel options,
//      bulk codecs).
//      Each figure is the median of BENCH_ROUNDS rounds, fresh objects per round.
//   2. The index: a folder of N chunks laid out on disk, served by a fresh process: start-up scan time (the
//      one walk of the tree that builds the in-memory index), StatFolder, a full ListObjects stream and one
//      page from the middle (both from the index), and the process RSS with and without that index.
// Every process runs with the launcher's GLIBC_TUNABLES (tools/network.cjs), as a started network does.
// Settings: BENCH_DIR (a temp dir under the OS temp dir), BENCH_CONCURRENCY (4: calls in flight for 1 and 4 MiB),
// BENCH_SMALL_CONCURRENCY (16: for 4 KiB), BENCH_ROUNDS (3), BENCH_LIST_CHUNKS (100000; a comma list such as
// 100000,1000000 grows one folder to each size in turn; 0 skips part 2), BENCH_SKIP_IO=1 skips part 1,
// BENCH_KEEP=1 keeps the data, BENCH_BASELINE_MAIN=<path of another build's storage-service main.js> adds it as a
// fourth contestant ("before"), measured in the same rounds, for a before/after on a busy machine.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createHash, createCipheriv, randomBytes } from 'node:crypto';
import { promises as fs, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { median } from './lib.mjs';

const require = createRequire(import.meta.url);
const root = join(dirname(new URL(import.meta.url).pathname), '..');
const { GLIBC_TUNABLES } = require(join(root, 'tools/network.cjs'));

// The client side gets the same malloc settings as the peer-node it stands in for.
if (process.env.GLIBC_TUNABLES === undefined) {
  const r = spawnSync(process.execPath, process.argv.slice(1), { stdio: 'inherit', env: { ...process.env, GLIBC_TUNABLES } });
  process.exit(r.status ?? 1);
}

const grpc = require('@grpc/grpc-js');
const { build } = require('esbuild');

const conc = Number(process.env.BENCH_CONCURRENCY ?? 4);
const smallConc = Number(process.env.BENCH_SMALL_CONCURRENCY ?? 16);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const listSizes = String(process.env.BENCH_LIST_CHUNKS ?? '100000').split(',').map(Number).filter((n) => n > 0);
const work = process.env.BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'bench-storage-'));
const CHUNK = 1;
const MANIFEST = 2;
const FOLDER = 'benchfolderaaaaaaaaaaaaaaaaaaaaa'.slice(0, 32);

function bytes(seed, n) {
  const key = createHash('sha256').update(String(seed)).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}
function objects(tag, count, size) {
  return Array.from({ length: count }, (_, i) => {
    const data = bytes(`${tag}-${i}`, size);
    return { id: createHash('sha256').update(data).digest('hex'), data };
  });
}
async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}
async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}
// CPU seconds (user + system) a process has used so far; /proc counts in clock ticks of 10 ms.
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
// Wall seconds of `fn` into t[key], and the CPU seconds `pid` spent meanwhile into t[key + 'Cpu'].
async function measure(t, key, pid, fn) {
  const c0 = cpuSeconds(pid);
  (t[key] ??= []).push(await timed(fn));
  (t[`${key}Cpu`] ??= []).push(cpuSeconds(pid) - c0);
}
async function fsyncDir(dir) {
  const fh = await fs.open(dir, 'r');
  await fh.sync();
  await fh.close();
}

// Raw baseline: the same durability steps the service takes, without gRPC, hashing or its bookkeeping.
async function rawPut(base, o) {
  const dir = join(base, o.id.slice(0, 2));
  await fs.mkdir(dir, { recursive: true });
  const tmp = join(base, `.tmp-${o.id}-${randomBytes(4).toString('hex')}`);
  const fh = await fs.open(tmp, 'wx');
  await fh.write(o.data, 0, o.data.length);
  await fh.sync();
  await fh.close();
  await fs.rename(tmp, join(dir, o.id));
  await fsyncDir(dir);
}
// The issue's 4 KiB baseline: create + fsync + rename (no directory fsync).
async function rawPutNoDirSync(base, o) {
  const dir = join(base, o.id.slice(0, 2));
  await fs.mkdir(dir, { recursive: true });
  const tmp = join(base, `.tmp-${o.id}`);
  const fh = await fs.open(tmp, 'wx');
  await fh.write(o.data, 0, o.data.length);
  await fh.sync();
  await fh.close();
  await fs.rename(tmp, join(dir, o.id));
}

// The project's own client and a no-op StorageService on the project's server stack, bundled from libs/shared.
const TRANSPORT_SRC = `
import { announceListening, bidi, createClient, createLogger, serveItems, startGrpcServer, unary, NotFoundError } from '@distri-vault/shared';
import { StorageServiceClient, StorageServiceService } from '@distri-vault/shared/generated/vault/storage/v1/storage';
import { StorageServiceAdapter } from './apps/peer-node/src/adapters/services';
export function storageClient(address: string) {
  return createClient(StorageServiceClient, address);
}
// The peer-node's own StoragePort: puts and gets over the Objects stream.
export function storageAdapter(address: string) {
  return new StorageServiceAdapter(address, 600_000);
}
async function serveNoop() {
  const log = createLogger('noop-storage', 'info');
  const held = new Map<string, Uint8Array>();
  const implementation = {
    putObject: unary(log, 'PutObject', async (req: { id: string; data: Uint8Array }) => {
      held.set(req.id, req.data);
      return { created: true };
    }),
    getObject: unary(log, 'GetObject', async (req: { id: string }) => {
      const data = held.get(req.id);
      if (!data) throw new NotFoundError('not held');
      held.delete(req.id);
      return { data };
    }),
    deleteObject: unary(log, 'DeleteObject', async (req: { id: string }) => ({ deleted: held.delete(req.id) })),
    objects: bidi(log, 'Objects', (call: any, signal: AbortSignal) =>
      serveItems(call, signal, 16, async (req: any) => {
        const r = req.op.value;
        if (req.op.$case === 'put') {
          held.set(r.id, r.data);
          return { seq: req.seq, result: { $case: 'put', value: { created: true } } };
        }
        const data = held.get(r.id);
        held.delete(r.id);
        return { seq: req.seq, result: data ? { $case: 'get', value: { data } } : { $case: 'error', value: { code: 5, message: 'not held' } } };
      }),
    ),
  };
  const server = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [{ name: 'vault.storage.v1.StorageService', definition: StorageServiceService, implementation: implementation as never }] });
  announceListening(log, 'noop-storage', '127.0.0.1', server.port);
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
}
if (process.argv[2] === 'serve-noop') void serveNoop();
`;

function startProcess(args, env) {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH, GLIBC_TUNABLES, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events = [];
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      events.push(rec);
      if (rec.msg === 'listening' && !rec.name?.endsWith('-health')) resolve({ child, port: rec.port, events });
    });
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}
const startService = (dataDir, main = join(root, 'dist/apps/storage-service/main.js')) =>
  startProcess([main], { STORAGE_PORT: '0', STORAGE_DATA_DIR: dataDir, STORAGE_SCRUB_BYTES_PER_SEC: '0', LOG_LEVEL: 'info' });
function stopProcess(s) {
  return new Promise((resolve) => {
    s.child.removeAllListeners('exit');
    if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
    // 'close': exited and its stdout read to the end (the last log lines included).
    s.child.once('close', resolve);
    s.child.kill('SIGTERM');
  });
}
async function until(cond, what, ms = 600_000) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}
const call = (client, method, req) => new Promise((res, rej) => client[method](req, (err, out) => (err ? rej(err) : res(out))));

execFileSync(process.execPath, ['tools/build.mjs', 'storage-service', '--quiet'], { cwd: root, stdio: 'inherit' });
mkdirSync(work, { recursive: true });
// Under dist/ so that its external packages resolve from the repository's node_modules.
const transportJs = join(root, 'dist/bench/storage-transport.cjs');
await build({
  stdin: { contents: TRANSPORT_SRC, resolveDir: root, loader: 'ts', sourcefile: 'bench-transport.ts' },
  outfile: transportJs,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  tsconfig: join(root, 'tsconfig.base.json'),
  logLevel: 'warning',
});
const { storageAdapter, storageClient } = require(transportJs);

const lines = [];
const out = (s) => {
  lines.push(s);
  console.log(s);
};
const procs = [];
try {
  out(
    `storage bench in ${work} (${execFileSync('df', ['--output=source,fstype', work]).toString().trim().split('\n')[1].replace(/\s+/g, ' ')}), ` +
      `${rounds} rounds (median), calls in flight: ${conc} for 1/4 MiB, ${smallConc} for 4 KiB (raw, service and transport alike)`,
  );

  if (process.env.BENCH_SKIP_IO !== '1') {
    const svc = await startService(join(work, 'data'));
    procs.push(svc);
    const noop = await startProcess([transportJs, 'serve-noop'], {});
    procs.push(noop);
    const client = storageClient(`127.0.0.1:${svc.port}`);
    const noopClient = storageClient(`127.0.0.1:${noop.port}`);
    const baseMain = process.env.BENCH_BASELINE_MAIN;
    const base = baseMain ? await startService(join(work, 'base-data'), baseMain) : undefined;
    if (base) procs.push(base);
    const baseClient = base ? storageClient(`127.0.0.1:${base.port}`) : undefined;
    const adapter = storageAdapter(`127.0.0.1:${svc.port}`);
    const noopAdapter = storageAdapter(`127.0.0.1:${noop.port}`);
    const domainKind = (kind) => (kind === CHUNK ? 'chunk' : 'manifest');
    const streamPut = (a, kind) => (o) => a.put(FOLDER, domainKind(kind), o.id, o.data);
    const streamGet = (a, kind, size) => async (o) => {
      if ((await a.get(FOLDER, domainKind(kind), o.id)).length !== size) throw new Error('short get');
    };
    const put = (c, kind) => (o) => call(c, 'putObject', { folder: FOLDER, kind, id: o.id, data: o.data });
    const get = (c, kind, size) => async (o) => {
      const r = await call(c, 'getObject', { folder: FOLDER, kind, id: o.id });
      if (r.data.length !== size) throw new Error('short get');
    };
    // Warm both channels and both processes' code paths.
    const warm = objects('warm', 16, 256 * 1024);
    for (const c of [client, noopClient, baseClient].filter(Boolean)) {
      await pool(warm, conc, put(c, CHUNK));
      await pool(warm, conc, get(c, CHUNK, 256 * 1024));
    }
    for (const a of [adapter, noopAdapter]) {
      await pool(warm, conc, (o) => a.put(FOLDER, 'chunk', o.id, o.data));
      await pool(warm, conc, (o) => a.get(FOLDER, 'chunk', o.id));
    }

    const rate = (n, s) => n / s;
    // One result line; `cpuPer` names the unit of work for the CPU figures (each process's own CPU: the
    // server's for service and transport, this process's for raw; the client's is not counted).
    const line = (what, unit, t, keys, n, target, rawName, cpuPer) => {
      const [r, s, c] = [rate(n, median(t[keys.raw])), rate(n, median(t[keys.svc])), rate(n, median(t[keys.noop]))];
      const f = unit === 'MB/s' ? (x) => x.toFixed(1) : (x) => x.toFixed(0);
      const b = t[keys.base]?.length ? rate(n, median(t[keys.base])) : undefined;
      const cpu = (key) => (median(t[`${key}Cpu`]) * cpuPer.scale) / n;
      out(
        `${what}: service ${f(s)} ${unit} = ${((100 * s) / r).toFixed(0)}% of ${rawName} ${f(r)}${target ? ` (target >= ${target}%)` : ''}; ` +
          `transport ceiling ${f(c)} ${unit} (${((100 * c) / r).toFixed(0)}% of raw); service = ${((100 * s) / c).toFixed(0)}% of the ceiling` +
          (b === undefined
            ? ''
            : `; before: ${f(b)} ${unit} = ${((100 * b) / r).toFixed(0)}% of raw; service/before per round (median): ${median(t[keys.svc].map((x, i) => t[keys.base][i] / x)).toFixed(2)}`),
      );
      out(
        `  CPU ${cpuPer.label}: service ${cpu(keys.svc).toFixed(cpuPer.digits)}, transport ${cpu(keys.noop).toFixed(cpuPer.digits)}, raw ${cpu(keys.raw).toFixed(cpuPer.digits)}` +
          (b === undefined ? '' : `, before ${cpu(keys.base).toFixed(cpuPer.digits)}`),
      );
    };
    const perGB = { label: 'seconds per GB', scale: 1000, digits: 2 };
    const perPut = { label: 'ms per put', scale: 1000, digits: 3 };

    for (const [label, size, count, kind] of [
      ['1 MiB', 1024 * 1024, 128, CHUNK],
      ['4 MiB', 4 * 1024 * 1024, 48, MANIFEST],
    ]) {
      const mb = (size * count) / 1e6;
      const t = {};
      for (let r = 0; r < rounds; r++) {
        const objs = objects(`big-${label}-${r}`, count, size);
        const rawDir = join(work, `raw-${size}-${r}`);
        await fs.mkdir(rawDir, { recursive: true });
        await measure(t, 'rawPut', process.pid, () => pool(objs, conc, (o) => rawPut(rawDir, o)));
        await measure(t, 'noopPut', noop.child.pid, () => pool(objs, conc, put(noopClient, kind)));
        await measure(t, 'svcPut', svc.child.pid, () => pool(objs, conc, put(client, kind)));
        if (base) await measure(t, 'basePut', base.child.pid, () => pool(objs, conc, put(baseClient, kind)));
        await measure(t, 'rawGet', process.pid, () =>
          pool(objs, conc, async (o) => {
            const b = await fs.readFile(join(rawDir, o.id.slice(0, 2), o.id));
            if (b.length !== size) throw new Error('short read');
          }),
        );
        await measure(t, 'noopGet', noop.child.pid, () => pool(objs, conc, get(noopClient, kind, size)));
        await measure(t, 'svcGet', svc.child.pid, () => pool(objs, conc, get(client, kind, size)));
        if (base) await measure(t, 'baseGet', base.child.pid, () => pool(objs, conc, get(baseClient, kind, size)));
        await fs.rm(rawDir, { recursive: true, force: true });
        for (const c of [client, baseClient].filter(Boolean)) await pool(objs, conc, (o) => call(c, 'deleteObject', { folder: FOLDER, kind, id: o.id }));
        // The same objects again over the stream (deleted above; the noop server hands each out once).
        await measure(t, 'noopStreamPut', noop.child.pid, () => pool(objs, conc, streamPut(noopAdapter, kind)));
        await measure(t, 'svcStreamPut', svc.child.pid, () => pool(objs, conc, streamPut(adapter, kind)));
        await measure(t, 'noopStreamGet', noop.child.pid, () => pool(objs, conc, streamGet(noopAdapter, kind, size)));
        await measure(t, 'svcStreamGet', svc.child.pid, () => pool(objs, conc, streamGet(adapter, kind, size)));
        await pool(objs, conc, (o) => call(client, 'deleteObject', { folder: FOLDER, kind, id: o.id }));
      }
      line(`put ${label} x${count}, Objects stream (the node's path)`, 'MB/s', t, { raw: 'rawPut', svc: 'svcStreamPut', noop: 'noopStreamPut' }, mb, 70, 'raw write+fsync+rename+dir fsync', perGB);
      line(`put ${label} x${count}, unary PutObject`, 'MB/s', t, { raw: 'rawPut', svc: 'svcPut', noop: 'noopPut', base: 'basePut' }, mb, 0, 'raw', perGB);
      line(`get ${label} x${count}, Objects stream`, 'MB/s', t, { raw: 'rawGet', svc: 'svcStreamGet', noop: 'noopStreamGet' }, mb, 0, 'raw readFile (page cache; the service also verifies SHA-256)', perGB);
      line(`get ${label} x${count}, unary GetObject`, 'MB/s', t, { raw: 'rawGet', svc: 'svcGet', noop: 'noopGet', base: 'baseGet' }, mb, 0, 'raw', perGB);
    }

    const t = {};
    const n = 4000;
    for (let r = 0; r < rounds; r++) {
      const small = objects(`small-${r}`, n, 4096);
      const [d1, d2] = [join(work, `raw-4k-${r}`), join(work, `raw-4k-dirsync-${r}`)];
      await fs.mkdir(d1, { recursive: true });
      await measure(t, 'raw', process.pid, () => pool(small, smallConc, (o) => rawPutNoDirSync(d1, o)));
      await measure(t, 'rawDirSync', process.pid, () => pool(small, smallConc, (o) => rawPut(d2, o)));
      await measure(t, 'noop', noop.child.pid, () => pool(small, smallConc, put(noopClient, CHUNK)));
      await measure(t, 'svc', svc.child.pid, () => pool(small, smallConc, put(client, CHUNK)));
      if (base) await measure(t, 'base', base.child.pid, () => pool(small, smallConc, put(baseClient, CHUNK)));
      const smallToo = objects(`small-stream-${r}`, n, 4096);
      await measure(t, 'noopStream', noop.child.pid, () => pool(smallToo, smallConc, streamPut(noopAdapter, CHUNK)));
      await measure(t, 'svcStream', svc.child.pid, () => pool(smallToo, smallConc, streamPut(adapter, CHUNK)));
      await fs.rm(d1, { recursive: true, force: true });
      await fs.rm(d2, { recursive: true, force: true });
    }
    line(`put 4 KiB x${n}, Objects stream (the node's path)`, '/s', t, { raw: 'raw', svc: 'svcStream', noop: 'noopStream' }, n, 50, 'raw create+fsync+rename', perPut);
    line(`put 4 KiB x${n}, unary PutObject`, '/s', t, { raw: 'raw', svc: 'svc', noop: 'noop', base: 'base' }, n, 0, 'raw', perPut);
    out(`  (raw with the directory fsync too, as the service does: ${(n / median(t.rawDirSync)).toFixed(0)}/s)`);
    for (const c of [client, noopClient, baseClient, adapter, noopAdapter].filter(Boolean)) c.close();
    while (procs.length) await stopProcess(procs.pop());
  }

  // 2. One folder grown to each size in turn, then served by a fresh process.
  if (listSizes.length > 0) {
    const empty = await startService(join(work, 'empty-data'));
    procs.push(empty);
    await until(() => empty.events.some((e) => e.msg === 'folders indexed'), 'the empty index');
    const rssEmpty = rssMiB(empty.child.pid);
    await stopProcess(procs.pop());
    const LIST = 'listfolderaaaaaaaaaaaaaaaaaaaaaa'.slice(0, 32);
    const listRoot = join(work, 'data', LIST, 'chunks');
    let laid = 0;
    for (const listChunks of listSizes) {
      const t0 = performance.now();
      for (let i = laid; i < listChunks; i++) {
        const data = Buffer.from(`chunk ${i}`);
        const id = createHash('sha256').update(data).digest('hex');
        const dir = join(listRoot, id.slice(0, 2));
        try {
          writeFileSync(join(dir, id), data);
        } catch {
          mkdirSync(dir, { recursive: true });
          writeFileSync(join(dir, id), data);
        }
      }
      out(`laid out ${listChunks - laid} more chunks (${listChunks} in all) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      laid = listChunks;
      execFileSync('sync');
      const svc = await startService(join(work, 'data'));
      procs.push(svc);
      const c2 = storageClient(`127.0.0.1:${svc.port}`);
      let st;
      const firstStat = await timed(async () => (st = await call(c2, 'statFolder', { folder: LIST })));
      if (st.chunks !== listChunks) throw new Error(`stat says ${st.chunks} chunks`);
      await until(() => svc.events.some((e) => e.msg === 'folders indexed'), 'the start-up index');
      const scanMs = svc.events.find((e) => e.msg === 'folders indexed').ms;
      const stats = [];
      for (let i = 0; i < 5; i++) stats.push(await timed(() => call(c2, 'statFolder', { folder: LIST })));
      const listAll = () =>
        new Promise((res, rej) => {
          let n = 0;
          let last = '';
          const s = c2.listObjects({ folder: LIST, kind: CHUNK, startAfter: '' });
          s.on('data', (m) => {
            for (const id of m.ids) {
              if (id <= last) rej(new Error('listing out of order'));
              last = id;
            }
            n += m.ids.length;
          });
          s.on('error', rej);
          s.on('end', () => (n === listChunks ? res() : rej(new Error(`listed ${n}`))));
        });
      const lists = [];
      for (let i = 0; i < 3; i++) lists.push(await timed(listAll));
      const pages = [];
      for (let i = 0; i < 5; i++)
        pages.push(
          await timed(
            () =>
              new Promise((res, rej) => {
                const s = c2.listObjects({ folder: LIST, kind: CHUNK, startAfter: '8'.repeat(64) });
                s.once('data', () => {
                  s.cancel();
                  res();
                });
                s.on('error', (e) => (e.code === grpc.status.CANCELLED ? undefined : rej(e)));
              }),
          ),
        );
      const ms = (s) => (s * 1000).toFixed(1);
      const rss = rssMiB(svc.child.pid);
      out(`${listChunks} chunks: start-up scan that builds the index ${scanMs} ms (dentry and inode caches warm: laid out just before); StatFolder right after start ${ms(firstStat)} ms (waits for that scan), later ${ms(Math.min(...stats))}..${ms(Math.max(...stats))} ms`);
      out(`${listChunks} chunks: full ListObjects stream ${ms(Math.min(...lists))}..${ms(Math.max(...lists))} ms; one page (1000 IDs) from the middle ${ms(Math.min(...pages))}..${ms(Math.max(...pages))} ms`);
      out(`${listChunks} chunks: storage-service RSS ${rss} MiB with the index, ${rssEmpty} MiB on an empty data dir: ~${rss - rssEmpty} MiB for the index and the listing's garbage`);
      c2.close();
      await stopProcess(procs.pop());
      // A clean stop wrote the index snapshot: the next start takes every unchanged shard from it.
      const again = await startService(join(work, 'data'));
      procs.push(again);
      await until(() => again.events.some((e) => e.msg === 'folders indexed'), 'the start-up index');
      const written = svc.events.find((e) => e.msg === 'index snapshot written' && e.folder === LIST);
      const c3 = storageClient(`127.0.0.1:${again.port}`);
      const st2 = await call(c3, 'statFolder', { folder: LIST });
      if (st2.chunks !== listChunks) throw new Error(`stat after the restart says ${st2.chunks} chunks`);
      c3.close();
      out(
        `${listChunks} chunks: after a clean stop (snapshot written in ${written?.ms ?? '?'} ms) the start-up index took ${again.events.find((e) => e.msg === 'folders indexed').ms} ms; RSS ${rssMiB(again.child.pid)} MiB`,
      );
      await stopProcess(procs.pop());
    }
  }
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'storage.txt'), `${new Date().toISOString()}\n${lines.join('\n')}\n`);
} finally {
  while (procs.length) await stopProcess(procs.pop());
  if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
}
