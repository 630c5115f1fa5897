#!/usr/bin/env node
// `node bench/storage.mjs`: the storage-service against raw Node file writes, on the same disk, in one run.
//   1. put and get of 1 MiB chunks and 4 MiB objects (sent as manifests: a chunk is at most 1 MiB + 1 KiB)
//      through gRPC vs raw writes (temp file, fsync, rename, fsync of the directory) and raw reads;
//   2. 4 KiB puts per second through gRPC vs raw create + fsync + rename;
//   3. StatFolder and ListObjects on a folder of 100k chunks: StatFolder right after a start (it waits for the
//      start-up scan that builds the folder's index: what every StatFolder cost before the index) vs later
//      calls; a full ListObjects stream and one page from the middle (both read the shard directories).
// Settings: BENCH_DIR (a temp dir under the OS temp dir), BENCH_CONCURRENCY (4 for large, 16 for 4 KiB),
// BENCH_LIST_CHUNKS (100000), BENCH_KEEP=1 keeps the data.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, createCipheriv, randomBytes } from 'node:crypto';
import { promises as fs, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const root = join(dirname(new URL(import.meta.url).pathname), '..');

const conc = Number(process.env.BENCH_CONCURRENCY ?? 4);
const listChunks = Number(process.env.BENCH_LIST_CHUNKS ?? 100_000);
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
  await fh.writeFile(o.data);
  await fh.sync();
  await fh.close();
  await fs.rename(tmp, join(dir, o.id));
  await fsyncDir(dir);
}
// The 4 KiB baseline: create + fsync + rename (no directory fsync).
async function rawPutNoDirSync(base, o) {
  const dir = join(base, o.id.slice(0, 2));
  await fs.mkdir(dir, { recursive: true });
  const tmp = join(base, `.tmp-${o.id}`);
  const fh = await fs.open(tmp, 'wx');
  await fh.writeFile(o.data);
  await fh.sync();
  await fh.close();
  await fs.rename(tmp, join(dir, o.id));
}

function startService(dataDir) {
  const child = spawn(process.execPath, [join(root, 'dist/apps/storage-service/main.js')], {
    env: { PATH: process.env.PATH, STORAGE_PORT: '0', STORAGE_DATA_DIR: dataDir, STORAGE_SCRUB_BYTES_PER_SEC: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const rec = JSON.parse(line);
      if (rec.msg === 'listening') resolve({ child, port: rec.port });
    });
    child.on('exit', (code) => reject(new Error(`storage-service exited with ${code}`)));
  });
}
function stopService(s) {
  return new Promise((resolve) => {
    s.child.removeAllListeners('exit');
    s.child.once('exit', resolve);
    s.child.kill('SIGTERM');
  });
}
function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

const def = protoLoader.loadSync('vault/storage/v1/storage.proto', { includeDirs: [join(root, 'proto')], keepCase: false, longs: Number, enums: Number, defaults: true });
const { StorageService } = grpc.loadPackageDefinition(def).vault.storage.v1;
const opts = { 'grpc.max_receive_message_length': 9 * 1024 * 1024, 'grpc.max_send_message_length': 9 * 1024 * 1024 };
const call = (client, method, req) => new Promise((res, rej) => client[method](req, (err, out) => (err ? rej(err) : res(out))));

execFileSync(process.execPath, ['tools/build.mjs', 'storage-service', '--quiet'], { cwd: root, stdio: 'inherit' });
const lines = [];
const out = (s) => {
  lines.push(s);
  console.log(s);
};
let svc;
try {
  out(`storage bench in ${work} (${execFileSync('df', ['--output=source,fstype', work]).toString().trim().split('\n')[1]}), concurrency ${conc}`);
  svc = await startService(join(work, 'data'));
  const client = new StorageService(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure(), opts);

  // 1. Large objects.
  for (const [label, size, count, kind] of [
    ['1 MiB', 1024 * 1024, 128, CHUNK],
    ['4 MiB', 4 * 1024 * 1024, 48, MANIFEST],
  ]) {
    const objs = objects(`big-${label}`, count, size);
    const mb = (size * count) / 1e6;
    const rawDir = join(work, `raw-${size}`);
    await fs.mkdir(rawDir, { recursive: true });
    const rawPutS = await timed(() => pool(objs, conc, (o) => rawPut(rawDir, o)));
    const putS = await timed(() => pool(objs, conc, (o) => call(client, 'putObject', { folder: FOLDER, kind, id: o.id, data: o.data })));
    const rawGetS = await timed(() => pool(objs, conc, async (o) => {
      const b = await fs.readFile(join(rawDir, o.id.slice(0, 2), o.id));
      if (b.length !== size) throw new Error('short read');
    }));
    const getS = await timed(() => pool(objs, conc, async (o) => {
      const r = await call(client, 'getObject', { folder: FOLDER, kind, id: o.id });
      if (r.data.length !== size) throw new Error('short get');
    }));
    out(`put ${label} x${count}: gRPC ${(mb / putS).toFixed(1)} MB/s  raw ${(mb / rawPutS).toFixed(1)} MB/s  = ${((100 * rawPutS) / putS).toFixed(0)}% of raw (target >= 70%)`);
    out(`get ${label} x${count}: gRPC ${(mb / getS).toFixed(1)} MB/s  raw read ${(mb / rawGetS).toFixed(1)} MB/s  = ${((100 * rawGetS) / getS).toFixed(0)}% of raw (gRPC verifies SHA-256; page cache warm for both)`);
  }

  // 2. 4 KiB puts per second.
  const small = objects('small', 4000, 4096);
  const smallConc = Number(process.env.BENCH_CONCURRENCY ?? 16);
  const rawSmallDir = join(work, 'raw-4k');
  await fs.mkdir(rawSmallDir, { recursive: true });
  const rawSmallS = await timed(() => pool(small, smallConc, (o) => rawPutNoDirSync(rawSmallDir, o)));
  const rawSmallDirSyncS = await timed(() => pool(objects('small2', 4000, 4096), smallConc, (o) => rawPut(join(work, 'raw-4k-dirsync'), o)));
  const smallS = await timed(() => pool(small, smallConc, (o) => call(client, 'putObject', { folder: FOLDER, kind: CHUNK, id: o.id, data: o.data })));
  out(`put 4 KiB x${small.length} (concurrency ${smallConc}): gRPC ${(small.length / smallS).toFixed(0)}/s  raw create+fsync+rename ${(small.length / rawSmallS).toFixed(0)}/s = ${((100 * rawSmallS) / smallS).toFixed(0)}% of raw (target >= 50%); raw with directory fsync too ${(small.length / rawSmallDirSyncS).toFixed(0)}/s`);
  client.close();
  await stopService(svc);
  svc = undefined;

  // 3. A folder of 100k chunks, laid out directly on disk, then served by a fresh process.
  const LIST = 'listfolderaaaaaaaaaaaaaaaaaaaaaa'.slice(0, 32);
  const listRoot = join(work, 'data', LIST, 'chunks');
  const t0 = performance.now();
  for (let i = 0; i < listChunks; i++) {
    const data = Buffer.from(`chunk ${i}`);
    const id = createHash('sha256').update(data).digest('hex');
    const dir = join(listRoot, id.slice(0, 2));
    if (i < 256 * 4) mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(join(dir, id), data);
    } catch {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, id), data);
    }
  }
  out(`laid out ${listChunks} chunks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  execFileSync('sync');
  svc = await startService(join(work, 'data'));
  const c2 = new StorageService(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure(), opts);
  const rssBefore = rssMiB(svc.child.pid);
  let st;
  const firstStat = await timed(async () => (st = await call(c2, 'statFolder', { folder: LIST })));
  if (st.chunks !== listChunks) throw new Error(`stat says ${st.chunks} chunks`);
  const stats = [];
  for (let i = 0; i < 5; i++) stats.push(await timed(() => call(c2, 'statFolder', { folder: LIST })));
  const listAll = () =>
    new Promise((res, rej) => {
      let n = 0;
      const s = c2.listObjects({ folder: LIST, kind: CHUNK, startAfter: '' });
      s.on('data', (m) => (n += m.ids.length));
      s.on('error', rej);
      s.on('end', () => (n === listChunks ? res() : rej(new Error(`listed ${n}`))));
    });
  const lists = [];
  for (let i = 0; i < 3; i++) lists.push(await timed(listAll));
  const page = await timed(
    () =>
      new Promise((res, rej) => {
        const s = c2.listObjects({ folder: LIST, kind: CHUNK, startAfter: '8'.repeat(64) });
        s.once('data', () => {
          s.cancel();
          res();
        });
        s.on('error', (e) => (e.code === grpc.status.CANCELLED ? undefined : rej(e)));
      }),
  );
  const ms = (s) => (s * 1000).toFixed(1);
  out(`${listChunks} chunks: StatFolder right after start (waits for the one scan of the tree that builds the index) ${ms(firstStat)} ms; later StatFolder ${ms(Math.min(...stats))}..${ms(Math.max(...stats))} ms`);
  out(`${listChunks} chunks: full ListObjects stream ${ms(Math.min(...lists))}..${ms(Math.max(...lists))} ms; one page from the middle ${ms(page)} ms`);
  out(`storage-service RSS: ${rssBefore} MiB before indexing, ${rssMiB(svc.child.pid)} MiB with ${listChunks} chunks indexed`);
  c2.close();
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'storage.txt'), `${new Date().toISOString()}\n${lines.join('\n')}\n`);
} finally {
  if (svc) await stopService(svc);
  if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
}
