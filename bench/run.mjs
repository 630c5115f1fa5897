#!/usr/bin/env node
// `npm run bench`: starts a fresh local network (3 nodes + gateway, R=3) in a temp dir, uploads and
// downloads one file through the gateway, and prints MB/s (MB = 10^6 B) and the peak RSS of every process.
// Settings: BENCH_SIZE_MIB (256), BENCH_RUNS (3; the median is reported), BENCH_KEEP=1 keeps the data dir.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';

const require = createRequire(import.meta.url);
const { startNetwork } = require('../tools/network.cjs');
const here = dirname(new URL(import.meta.url).pathname);

const sizeMiB = Number(process.env.BENCH_SIZE_MIB ?? 256);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const size = sizeMiB * 1024 * 1024;

/** Pseudo-random (incompressible) bytes, generated as the upload streams. */
function body(seed) {
  let left = size;
  let x = seed;
  const block = Buffer.alloc(1024 * 1024);
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, block.length);
      const out = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out.writeUInt32LE(x >>> 0, i);
      }
      left -= n;
      this.push(out);
    },
  });
}

function put(base, path, seed) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/files/${path}`, { method: 'PUT', headers: { 'content-length': size, authorization: `Bearer ${net.token}` } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(text)) : reject(new Error(`PUT ${res.statusCode}: ${text}`))));
    });
    req.on('error', reject);
    body(seed).pipe(req);
  });
}

function get(base, path) {
  return new Promise((resolve, reject) => {
    http
      .get(`${base}/v1/files/${path}`, { headers: { authorization: `Bearer ${net.token}` } }, (res) => {
        const h = createHash('sha256');
        let n = 0;
        res.on('data', (d) => {
          h.update(d);
          n += d.length;
        });
        res.on('end', () => (res.statusCode === 200 ? resolve({ bytes: n, sha256: h.digest('hex') }) : reject(new Error(`GET ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

const TICK = 100; // USER_HZ on Linux
const cpuSeconds = (pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return process.env.BENCH_CPU === 'sys' ? Number(f[12]) / TICK : process.env.BENCH_CPU === 'user' ? Number(f[11]) / TICK : (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return NaN;
  }
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const peakRss = (pid) => {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
};

const root = mkdtempSync(join(tmpdir(), 'dv-bench-'));
const net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'warn' } });
try {
  // Wait until the home node sees both peers.
  for (let i = 0; ; i++) {
    const nodes = await new Promise((resolve) => http.get(`${net.gatewayUrl}/v1/nodes`, { headers: { authorization: `Bearer ${net.token}` } }, (r) => { let t = ''; r.on('data', (d) => (t += d)); r.on('end', () => resolve(JSON.parse(t).nodes)); }));
    if (nodes.filter((n) => n.state === 'connected').length === 2) break;
    if (i > 100) throw new Error('peers did not connect');
    await new Promise((r) => setTimeout(r, 200));
  }
  const procs = [net.gateway, ...net.nodes.flatMap((n) => [n.procs.peer, n.procs.crypto, n.procs.storage])];
  const cpuNow = () => procs.map((p) => cpuSeconds(p.child.pid));
  const cpuUp = procs.map(() => 0);
  const cpuDown = procs.map(() => 0);
  const addCpu = (acc, before) => cpuNow().forEach((c, i) => (acc[i] += c - before[i]));
  const up = [];
  const down = [];
  for (let r = 0; r < runs; r++) {
    let before = cpuNow();
    let t = process.hrtime.bigint();
    const info = await put(net.gatewayUrl, `bench/file-${r}.bin`, r + 1);
    up.push(size / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
    addCpu(cpuUp, before);
    before = cpuNow();
    t = process.hrtime.bigint();
    const got = await get(net.gatewayUrl, `bench/file-${r}.bin`);
    down.push(size / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
    addCpu(cpuDown, before);
    if (got.bytes !== size || got.sha256 !== info.sha256) throw new Error('download differs from upload');
  }
  const gb = (size * runs) / 1e9;
  const rss = procs.map((p, i) => ({
    process: p.name,
    peakRssMiB: Math.round(peakRss(p.child.pid)),
    uploadCpuSecondsPerGB: +(cpuUp[i] / gb).toFixed(2),
    downloadCpuSecondsPerGB: +(cpuDown[i] / gb).toFixed(2),
  }));
  const result = {
    file: `${sizeMiB} MiB`,
    runs,
    replicas: 3,
    uploadMBps: { median: +median(up).toFixed(1), all: up.map((x) => +x.toFixed(1)) },
    downloadMBps: { median: +median(down).toFixed(1), all: down.map((x) => +x.toFixed(1)) },
    peakRss: rss,
  };
  console.log(`\nupload   ${sizeMiB} MiB through the gateway, R=3: median ${result.uploadMBps.median} MB/s  (runs: ${result.uploadMBps.all.join(', ')})`);
  console.log(`download ${sizeMiB} MiB through the gateway:      median ${result.downloadMBps.median} MB/s  (runs: ${result.downloadMBps.all.join(', ')})`);
  console.log('\nper process: peak RSS (VmHWM), CPU seconds per GB moved (upload / download)');
  for (const r of rss) console.log(`  ${r.process.padEnd(16)} ${String(r.peakRssMiB).padStart(5)} MiB   ${r.uploadCpuSecondsPerGB.toFixed(2).padStart(6)} / ${r.downloadCpuSecondsPerGB.toFixed(2).padStart(6)} CPU-s/GB`);
  const sum = (k) => rss.reduce((a, r) => a + r[k], 0).toFixed(1);
  console.log(`  ${'all'.padEnd(16)}         ${sum('uploadCpuSecondsPerGB').padStart(12)} / ${sum('downloadCpuSecondsPerGB').padStart(6)} CPU-s/GB`);
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'walking-skeleton.json'), JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2));
} finally {
  await net.stop();
  if (!process.env.BENCH_KEEP) rmSync(root, { recursive: true, force: true });
}

// ---- storage-service (issue #3): bench/storage.mjs in its own process, after the network bench. ----
// BENCH_STORAGE=0 skips it.
if (process.env.BENCH_STORAGE !== '0') {
  const { execFileSync } = await import('node:child_process');
  console.log('\nstorage-service bench (bench/storage.mjs)');
  execFileSync(process.execPath, [join(here, 'storage.mjs')], { stdio: 'inherit' });
}

// ---- recovery (issue #5): bench/recovery.mjs in its own process. BENCH_RECOVERY=0 skips it;
// RECOVERY_SIZE_MIB (1024) sets the folder size. ----
if (process.env.BENCH_RECOVERY !== '0') {
  const { execFileSync } = await import('node:child_process');
  console.log('\nrecovery bench (bench/recovery.mjs)');
  execFileSync(process.execPath, [join(here, 'recovery.mjs')], { stdio: 'inherit' });
}

// ---- placement and repair (issue #5): bench/repair.mjs in its own process. BENCH_REPAIR=0 skips it. ----
if (process.env.BENCH_REPAIR !== '0') {
  const { execFileSync } = await import('node:child_process');
  console.log('\nre-replication bench (bench/repair.mjs)');
  execFileSync(process.execPath, [join(here, 'repair.mjs')], { stdio: 'inherit' });
}
