#!/usr/bin/env node
// CPU profile of an upload (issue #8, "profile before optimizing"): a fresh 3-node network (R=3) whose
// every app runs with `--cpu-prof` (through VAULT_NODE_ARGS), one PROFILE_SIZE_MIB (256) MiB upload through
// the gateway (and a download with PROFILE_DOWNLOAD=1), then the network stops and each process's
// .cpuprofile is summarised: its busy CPU time and the functions with the most self time.
// With PROFILE_SMALL=N the upload is instead N files of 4 KiB, 32 at a time (the small-files row of the bench).
// Settings: PROFILE_SIZE_MIB (256), PROFILE_SMALL (0), PROFILE_TOP (8), PROFILE_DOWNLOAD (0), PROFILE_DIR (a temp
// dir; kept, so the profiles can be opened in Chrome DevTools).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { body, gatewayClient } from './lib.mjs';

const require = createRequire(import.meta.url);
const { startNetwork } = require('../tools/network.cjs');
const MiB = 1024 * 1024;
const size = Number(process.env.PROFILE_SIZE_MIB ?? 256) * MiB;
const top = Number(process.env.PROFILE_TOP ?? 8);
const profDir = process.env.PROFILE_DIR ?? mkdtempSync(join(tmpdir(), 'dv-prof-'));


const small = Number(process.env.PROFILE_SMALL ?? 0);
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const { call } = gatewayClient(() => net, agent);

/** Self time per function (ms) and total sampled time of one .cpuprofile. */
function summarise(file) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const f = n.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules\/|dist\/apps\/)/, '')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0) / 1000);
  }
  const idle = [...self].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
  const total = [...self.values()].reduce((a, v) => a + v, 0);
  return { busyMs: total - idle, top: [...self].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top) };
}

const root = mkdtempSync(join(tmpdir(), 'dv-prof-net-'));
const net = await startNetwork({
  root,
  nodes: 3,
  output: { dir: join(root, 'logs') },
  env: { LOG_LEVEL: 'warn', VAULT_NODE_ARGS: `${process.env.VAULT_NODE_ARGS ?? ''} --cpu-prof --cpu-prof-dir=${profDir}` },
});
const names = new Map();
try {
  for (let i = 0; ; i++) {
    const r = await call('GET', '/v1/nodes');
    if (r.status === 200 && JSON.parse(r.text).nodes.filter((n) => n.state === 'connected').length === 2) break;
    if (i > 150) throw new Error('peers did not connect');
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const p of [net.gateway, ...net.nodes.flatMap((n) => [n.procs.peer, n.procs.crypto, n.procs.storage])]) names.set(p.child.pid, p.name);
  const t = Date.now();
  if (small > 0) {
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < small; i = next++) {
          const r = await call('PUT', `/v1/files/small/${i}.bin`, body(4096, i), 4096);
          if (r.status !== 201) throw new Error(`PUT ${r.status}: ${r.text}`);
        }
      }),
    );
    console.log(`${small} files of 4 KiB: ${(small / ((Date.now() - t) / 1000)).toFixed(0)} files/s (with --cpu-prof)`);
  } else {
    const put = await call('PUT', '/v1/files/profile.bin', body(size, 5), size);
    if (put.status !== 201) throw new Error(`PUT ${put.status}: ${put.text}`);
    console.log(`upload of ${size / MiB} MiB: ${(size / 1e6 / ((Date.now() - t) / 1000)).toFixed(1)} MB/s (with --cpu-prof)`);
  }
  if (process.env.PROFILE_DOWNLOAD === '1') {
    const t2 = Date.now();
    await call('GET', '/v1/files/profile.bin');
    console.log(`download: ${(size / 1e6 / ((Date.now() - t2) / 1000)).toFixed(1)} MB/s`);
  }
} finally {
  await net.stop();
  rmSync(root, { recursive: true, force: true });
}
// CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile
const profiles = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
const rows = profiles
  .map((f) => ({ f, pid: Number(f.split('.')[3]) }))
  .filter(({ pid }) => names.has(pid))
  .map(({ f, pid }) => ({ name: names.get(pid), ...summarise(join(profDir, f)) }))
  .sort((a, b) => b.busyMs - a.busyMs);
for (const r of rows) {
  console.log(`\n${r.name}: ${(r.busyMs / 1000).toFixed(1)} s busy (whole life of the process)`);
  for (const [k, ms] of r.top) console.log(`  ${((100 * ms) / r.busyMs).toFixed(1).padStart(5)} %  ${(ms / 1000).toFixed(2).padStart(6)} s  ${k}`);
}
console.log(`\nprofiles: ${profDir}`);
