#!/usr/bin/env node
// Recovery benchmark (issue #5): a 3-node local network (R=3) in a temp dir; RECOVERY_SIZE_MIB (1024) of
// files is uploaded through the gateway; the gateway's home node is killed, its data directory wiped
// (identity and vault key kept) and restarted; it recovers its folder from its peers on its own. Prints
// the time from restart until GET /v1/recover says "done", MB/s (MB = 10^6 B, ciphertext fetched), the
// recovery's own duration, and the CPU seconds all processes spent meanwhile (per GB fetched).
// Settings: RECOVERY_SIZE_MIB (1024), RECOVERY_FILE_MIB (64, size of each file), RECOVERY_VERIFY (1: read
// every file back and compare SHA-256 afterwards), BENCH_KEEP=1 keeps the data dir.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { body, gatewayClient, sleep } from './lib.mjs';

const require = createRequire(import.meta.url);
const { startNetwork } = require('../tools/network.cjs');
const here = dirname(new URL(import.meta.url).pathname);
const MiB = 1024 * 1024;
const totalMiB = Number(process.env.RECOVERY_SIZE_MIB ?? 1024);
const fileMiB = Number(process.env.RECOVERY_FILE_MIB ?? 64);
const verify = process.env.RECOVERY_VERIFY !== '0';


const { call, json } = gatewayClient(() => net);

const TICK = 100;
const cpuSeconds = (pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
};
const allProcs = () => [net.gateway, ...net.nodes.flatMap((n) => [n.procs.peer, n.procs.crypto, n.procs.storage])].filter(Boolean);

const root = mkdtempSync(join(tmpdir(), 'dv-bench-recovery-'));
const net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'info' } });
try {
  for (let i = 0; ; i++) {
    const r = await json('GET', '/v1/nodes').catch(() => null);
    if (r && r.nodes.filter((n) => n.state === 'connected').length === 2) break;
    if (i > 150) throw new Error('peers did not connect');
    await sleep(200);
  }
  const files = [];
  let left = totalMiB * MiB;
  const t0 = Date.now();
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, fileMiB * MiB);
    const r = await call('PUT', `/v1/files/bench/recovery/f${i}.bin`, body(size, i + 7), size);
    if (r.status !== 201) throw new Error(`PUT ${r.status}: ${r.text}`);
    files.push({ path: `bench/recovery/f${i}.bin`, size, sha256: JSON.parse(r.text).sha256 });
    left -= size;
  }
  console.log(`uploaded ${totalMiB} MiB in ${files.length} files (${((totalMiB * MiB) / 1e6 / ((Date.now() - t0) / 1000)).toFixed(1)} MB/s)`);

  const home = net.nodes[0];
  await home.kill();
  rmSync(home.dataDir, { recursive: true, force: true });
  const survivors = allProcs().filter((p) => p.running);
  const cpuBefore = survivors.map((p) => cpuSeconds(p.child.pid));
  const started = process.hrtime.bigint();
  await home.start();
  let status;
  for (;;) {
    status = await json('GET', '/v1/recover').catch(() => null);
    if (status && status.run >= 1 && (status.phase === 'done' || status.phase === 'failed')) break;
    await sleep(100);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = survivors.reduce((a, p, i) => a + cpuSeconds(p.child.pid) - cpuBefore[i], 0) + [home.procs.peer, home.procs.crypto, home.procs.storage].reduce((a, p) => a + cpuSeconds(p.child.pid), 0);
  const gb = status.bytes / 1e9;
  const result = {
    folderMiB: totalMiB,
    files: files.length,
    phase: status.phase,
    restartToDoneSeconds: +seconds.toFixed(2),
    recoverySeconds: +(status.durationMs / 1000).toFixed(2),
    bytesFetched: status.bytes,
    mbPerSecondRestartToDone: +(status.bytes / 1e6 / seconds).toFixed(1),
    mbPerSecondRecovery: +(status.bytes / 1e6 / (status.durationMs / 1000)).toFixed(1),
    chunks: status.chunks,
    manifests: status.manifests,
    filesIndexed: status.files,
    errors: status.errors,
    cpuSeconds: +cpu.toFixed(1),
    cpuSecondsPerGB: +(cpu / gb).toFixed(1),
  };
  console.log(`\nrecovery of a ${totalMiB} MiB folder (${files.length} files, 3 nodes, identity + key kept): ${result.phase}`);
  console.log(`  restart -> done     ${result.restartToDoneSeconds} s   ${result.mbPerSecondRestartToDone} MB/s`);
  console.log(`  recovery itself     ${result.recoverySeconds} s   ${result.mbPerSecondRecovery} MB/s  (${status.chunks} chunks, ${status.manifests} manifests, ${status.bytes} bytes, ${status.files} files, ${status.errors} errors)`);
  console.log(`  CPU, all processes  ${result.cpuSeconds} s   ${result.cpuSecondsPerGB} CPU-s/GB fetched`);
  if (verify) {
    const t = Date.now();
    for (const f of files) {
      const r = await call('GET', `/v1/files/${f.path}`);
      if (r.status !== 200 || r.sha256 !== f.sha256) throw new Error(`${f.path} differs after recovery (${r.status})`);
    }
    console.log(`  every file read back identical (sha256), ${((totalMiB * MiB) / 1e6 / ((Date.now() - t) / 1000)).toFixed(1)} MB/s`);
    result.verified = true;
  }
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'recovery.json'), JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2));
  if (status.phase !== 'done') process.exitCode = 1;
} finally {
  await net.stop();
  if (!process.env.BENCH_KEEP) rmSync(root, { recursive: true, force: true });
}
