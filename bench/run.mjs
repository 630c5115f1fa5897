#!/usr/bin/env node
// `npm run bench` (issue #8): one fresh local network (3 nodes + gateway, R=3) in a temp dir, and four
// scenarios through the gateway, each with the peak RSS of every process:
//   upload    BENCH_SIZE_MIB (1024) MiB, streamed, seeded incompressible bytes     -> MB/s (MB = 10^6 B)
//   download  the same file back, SHA-256 checked                                 -> MB/s
//   small     BENCH_SMALL_COUNT (2000) files of 4 KiB, BENCH_SMALL_CONCURRENCY (32) clients -> files/s
//   recovery  node1 killed, its data directory wiped (identity and key kept), restarted: it recovers its
//             whole folder (the files above) from its peers                      -> MB/s fetched
// It prints ONE table (with the reference figures as columns) and writes it with a chart to
// bench/results/bench.{md,svg,json} (bench/report.mjs).
// Other settings: BENCH_RUNS (1; upload/download repeated, the median is reported), BENCH_RECOVERY=0
// skips recovery, BENCH_KEEP=1 keeps the data dir, BENCH_RESULTS_DIR (bench/results).
// The older single-purpose benches (storage.mjs, recovery.mjs, repair.mjs, crypto.mjs, gateway-load.mjs,
// rotation.mjs) still run on their own with `node bench/<name>.mjs`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { textTable, writeReport } from './report.mjs';
import { body, gatewayClient, median, sleep } from './lib.mjs';

const require = createRequire(import.meta.url);
const { startNetwork } = require('../tools/network.cjs');
const here = dirname(new URL(import.meta.url).pathname);

const MiB = 1024 * 1024;
const sizeMiB = Number(process.env.BENCH_SIZE_MIB ?? 1024);
const runs = Number(process.env.BENCH_RUNS ?? 1);
const smallCount = Number(process.env.BENCH_SMALL_COUNT ?? 2000);
const smallConcurrency = Number(process.env.BENCH_SMALL_CONCURRENCY ?? 32);
const doRecovery = process.env.BENCH_RECOVERY !== '0';
const resultsDir = process.env.BENCH_RESULTS_DIR ?? join(here, 'results');
const size = sizeMiB * MiB;
const MEMORY_TARGET_MIB = 150;


const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(smallConcurrency, 4) });

const { call, json } = gatewayClient(() => net, agent);

const procs = () => [net.gateway, ...net.nodes.flatMap((n) => [n.procs.peer, n.procs.crypto, n.procs.storage])];
const hwmMiB = (pid) => {
  try {
    return Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/)[1]) / 1024;
  } catch {
    return NaN;
  }
};
/** Resets every process's VmHWM to its current RSS, so the next reading is this scenario's peak. */
function resetPeaks() {
  for (const p of procs()) {
    try {
      writeFileSync(`/proc/${p.child.pid}/clear_refs`, '5');
    } catch {
      /* not allowed here: the peaks then cover the run so far */
    }
  }
}
const peaks = () => Object.fromEntries(procs().map((p) => [p.name, Math.round(hwmMiB(p.child.pid))]));

const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const root = mkdtempSync(join(tmpdir(), 'dv-bench-'));
const net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'warn' } });
const rows = [];
try {
  for (let i = 0; ; i++) {
    const r = await json('GET', '/v1/nodes').catch(() => null);
    if (r && r.nodes.filter((n) => n.state === 'connected').length === 2) break;
    if (i > 150) throw new Error('peers did not connect');
    await sleep(200);
  }
  const names = procs().map((p) => p.name);

  // Upload and download: each its own peak per process (over all runs).
  const up = [];
  const down = [];
  const upPeak = {};
  const downPeak = {};
  const maxInto = (acc, cur) => Object.entries(cur).forEach(([k, v]) => (acc[k] = Math.max(acc[k] ?? 0, v)));
  for (let r = 0; r < runs; r++) {
    resetPeaks();
    let t = process.hrtime.bigint();
    const put = await call('PUT', `/v1/files/bench/file-${r}.bin`, body(size, r + 1), size);
    if (put.status !== 201) throw new Error(`PUT ${put.status}: ${put.text}`);
    up.push(size / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
    maxInto(upPeak, peaks());
    resetPeaks();
    t = process.hrtime.bigint();
    const got = await call('GET', `/v1/files/bench/file-${r}.bin`);
    down.push(size / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
    maxInto(downPeak, peaks());
    if (got.status !== 200 || got.bytes !== size || got.sha256 !== JSON.parse(put.text).sha256) throw new Error('download differs from upload');
    console.log(`run ${r + 1}: upload ${up.at(-1).toFixed(1)} MB/s, download ${down.at(-1).toFixed(1)} MB/s`);
  }
  const runsNote = runs > 1 ? `median of ${runs} runs (${up.map((x) => x.toFixed(1)).join(', ')} / ${down.map((x) => x.toFixed(1)).join(', ')})` : undefined;
  rows.push({ scenario: `upload ${sizeMiB} MiB`, value: median(up), unit: 'MB/s', reference: 91, target: 182, peakRssMiB: upPeak, note: runsNote });
  rows.push({ scenario: `download ${sizeMiB} MiB`, value: median(down), unit: 'MB/s', reference: 105, target: 210, peakRssMiB: downPeak });

  // Small files: `smallCount` PUTs of 4 KiB, `smallConcurrency` at a time.
  resetPeaks();
  let next = 0;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: smallConcurrency }, async () => {
      for (let i = next++; i < smallCount; i = next++) {
        const r = await call('PUT', `/v1/files/bench/small/${i}.bin`, body(4096, i + 100), 4096);
        if (r.status !== 201) failed++;
      }
    }),
  );
  const smallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (failed) throw new Error(`${failed} small-file PUTs failed`);
  rows.push({
    scenario: 'small files 4 KiB',
    value: smallCount / smallSeconds,
    unit: 'files/s',
    reference: 127,
    target: 1270,
    peakRssMiB: peaks(),
    note: `${smallCount} PUTs, ${smallConcurrency} concurrent clients; "Go original" here is the issue's target divided by 10 (its best)`,
  });
  console.log(`small files: ${(smallCount / smallSeconds).toFixed(0)} files/s`);

  if (doRecovery) {
    const home = net.nodes[0];
    await home.kill();
    rmSync(home.dataDir, { recursive: true, force: true });
    resetPeaks();
    const started = process.hrtime.bigint();
    await home.start();
    let status;
    for (;;) {
      status = await json('GET', '/v1/recover').catch(() => null);
      if (status && status.run >= 1 && (status.phase === 'done' || status.phase === 'failed')) break;
      if (Number(process.hrtime.bigint() - started) / 1e9 > 1800) throw new Error('recovery did not finish in 30 min');
      await sleep(100);
    }
    if (status.phase !== 'done') throw new Error(`recovery ${status.phase}: ${JSON.stringify(status.errorMessages)}`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    rows.push({
      scenario: `recovery ${Math.round(status.bytes / MiB)} MiB`,
      value: status.bytes / 1e6 / seconds,
      unit: 'MB/s',
      reference: null,
      target: null,
      peakRssMiB: peaks(),
      note: `restart of the wiped node to "done": ${seconds.toFixed(1)} s for ${status.chunks} chunks and ${status.manifests} manifests (${status.bytes} bytes of ciphertext fetched)`,
    });
    console.log(`recovery: ${(status.bytes / 1e6 / seconds).toFixed(1)} MB/s`);
  }

  const result = {
    date: new Date().toISOString(),
    machine: `${cpus().length} cores, Node ${process.version}`,
    load,
    settings: { size: `${sizeMiB} MiB`, runs, replicas: 3, smallFiles: smallCount, smallConcurrency, VAULT_NODE_ARGS: process.env.VAULT_NODE_ARGS ?? '' },
    processes: names,
    memoryLimitMiB: MEMORY_TARGET_MIB,
    rows: rows.map((r) => ({ ...r, value: +r.value.toFixed(1) })),
  };
  console.log('\n' + textTable(result));
  const files = writeReport(result, resultsDir);
  console.log(`\nwritten: ${files.md}, ${files.svg}, ${files.json}`);
} finally {
  agent.destroy();
  await net.stop();
  if (!process.env.BENCH_KEEP) rmSync(root, { recursive: true, force: true });
}

// ---- the per-component benches the storage (#3) and peer-network (#5) issues name, each in its own
// process after the table: BENCH_STORAGE=0 / BENCH_REPAIR=0 skip them (`node bench/<name>.mjs` runs one).
for (const [flag, file, title] of [
  ['BENCH_STORAGE', 'storage.mjs', 'storage-service bench'],
  ['BENCH_REPAIR', 'repair.mjs', 're-replication bench'],
]) {
  if (process.env[flag] === '0') continue;
  const { execFileSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  console.log(`\n${title} (bench/${file})`);
  execFileSync(process.execPath, [fileURLToPath(new URL(file, import.meta.url))], { stdio: 'inherit' });
}
