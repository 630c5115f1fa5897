#!/usr/bin/env node
// Re-replication after a node loss, and what it costs client traffic. Starts a fresh local network
// (4 nodes + gateway, R=3, W=2, short grace period) in a temp dir, then:
//   1. baseline: client upload throughput through the gateway with no repair running (median of runs);
//   2. stores a data set (BENCH_REPAIR_SIZE_MIB, default 256 MiB) and waits for every object at R copies;
//   3. per run: SIGKILLs the peer holding the most copies and measures re-replication throughput (bytes
//      that fell below R copies / time from the first repair copy to every object back at R on the live
//      nodes), restarts it and waits for the extra copies to go; then kills again and uploads two client
//      files while that repair runs (client throughput during repair), and restarts it again.
// Prints medians (MB = 10^6 B). Settings: BENCH_REPAIR_SIZE_MIB (256), BENCH_REPAIR_CLIENT_MIB (32),
// BENCH_REPAIR_RUNS (3), BENCH_REPAIR_RATE (repair limit, bytes/s; default the node's 32 MiB/s),
// BENCH_KEEP=1 keeps the data dir.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { body, median, sleep } from './lib.mjs';

const require = createRequire(import.meta.url);
const { startNetwork } = require('../tools/network.cjs');
const here = dirname(new URL(import.meta.url).pathname);

const MiB = 1024 * 1024;
const dataMiB = Number(process.env.BENCH_REPAIR_SIZE_MIB ?? 256);
const clientMiB = Number(process.env.BENCH_REPAIR_CLIENT_MIB ?? 32);
const runs = Number(process.env.BENCH_REPAIR_RUNS ?? 3);
const R = 3;
const GRACE_MS = 3000;
const LIMIT_MS = 10 * 60_000;


let token = '';
function put(base, path, size, seed) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/files/${path}`, { method: 'PUT', headers: { 'content-length': size, authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(text)) : reject(new Error(`PUT ${res.statusCode}: ${text}`))));
    });
    req.on('error', reject);
    body(size, seed).pipe(req);
  });
}
function getJson(url) {
  return new Promise((resolve, reject) =>
    http
      .get(url, { headers: { authorization: `Bearer ${token}` } }, (r) => {
        let t = '';
        r.on('data', (d) => (t += d));
        r.on('end', () => resolve(JSON.parse(t)));
      })
      .on('error', reject),
  );
}

/** object ("chunks/<id>") -> { size, holders: Set<node name> } of the owner's folder, from the disks. */
function scan(nodes, folder) {
  const m = new Map();
  for (const n of nodes) {
    for (const kind of ['chunks', 'manifests']) {
      const walk = (dir) => {
        let entries;
        try {
          entries = readdirSync(dir, { withFileTypes: true });
        } catch {
          return;
        }
        for (const e of entries) {
          const p = join(dir, e.name);
          if (e.isDirectory()) walk(p);
          else if (/^[0-9a-f]{64}$/.test(e.name)) {
            const key = `${kind}/${e.name}`;
            let o = m.get(key);
            if (!o) m.set(key, (o = { size: statSync(p).size, holders: new Set() }));
            o.holders.add(n.name);
          }
        }
      };
      walk(join(n.dataDir, folder, kind));
    }
  }
  return m;
}
const copiesOf = (m) => [...m.values()].reduce((a, o) => a + o.holders.size, 0);
async function until(cond, what, ms = LIMIT_MS) {
  const t = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > t) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

const root = mkdtempSync(join(tmpdir(), 'dv-bench-repair-'));
const env = { LOG_LEVEL: 'warn', NODE_REPLICAS: String(R), NODE_WRITE_QUORUM: '2', NODE_REPAIR_GRACE_MS: String(GRACE_MS), NODE_REPAIR_INTERVAL_MS: '1000', NODE_HEARTBEAT_MS: '500' };
if (process.env.BENCH_REPAIR_RATE) env.NODE_REPAIR_RATE_BYTES = process.env.BENCH_REPAIR_RATE;
const net = await startNetwork({ root, nodes: 4, output: { dir: join(root, 'logs') }, env });
token = net.token;
try {
  const base = net.gatewayUrl;
  await until(async () => (await getJson(`${base}/v1/nodes`)).nodes.filter((n) => n.state === 'connected').length === 3, 'peers connected', 30_000);
  const owner = (await getJson(`${base}/v1/node`)).serverId;
  const allAtR = (nodes) => [...scan(nodes, owner).values()].every((o) => o.holders.size === R);
  let seed = 1;
  const clientSize = clientMiB * MiB;

  // 1. Baseline.
  const baseline = [];
  for (let r = 0; r < runs; r++) {
    const t = process.hrtime.bigint();
    await put(base, `client/base-${r}.bin`, clientSize, seed++);
    baseline.push(clientSize / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
    await until(() => allAtR(net.nodes), 'baseline copies at R');
  }

  // 2. The data set.
  const files = Math.max(1, Math.round(dataMiB / 64));
  for (let i = 0; i < files; i++) await put(base, `data/part-${i}.bin`, Math.floor((dataMiB * MiB) / files), seed++);
  await until(() => allAtR(net.nodes), 'data set at R');

  // 3. Kill, repair, measure; restart, clean up. Each run kills twice: once for a quiet repair (its MB/s),
  // once with client uploads running during the repair (their MB/s).
  const repairMBps = [];
  const duringMBps = [];
  const repairedMB = [];
  let overlapped = 0;
  /** Kills the peer holding the most bytes; resolves once repair has started. */
  const killOne = async () => {
    const before = scan(net.nodes, owner);
    const held = new Map();
    for (const o of before.values()) for (const h of o.holders) if (h !== 'node1') held.set(h, (held.get(h) ?? 0) + o.size);
    const victimName = [...held.entries()].sort((a, b) => b[1] - a[1])[0][0];
    const victim = net.nodes.find((n) => n.name === victimName);
    const live = net.nodes.filter((n) => n !== victim);
    const lostBytes = [...before.values()].filter((o) => o.holders.has(victimName)).reduce((a, o) => a + o.size, 0);
    await victim.kill();
    const copies0 = copiesOf(scan(live, owner));
    await until(() => copiesOf(scan(live, owner)) > copies0, 'repair started');
    return { victim, victimName, live, lostBytes, t0: process.hrtime.bigint() };
  };
  const restart = async (victim) => {
    await victim.start();
    await until(() => allAtR(net.nodes), 'extra copies cleaned after restart');
  };
  for (let r = 0; r < runs; r++) {
    // Quiet repair: nothing else running.
    const q = await killOne();
    await until(() => allAtR(q.live), 'repair done');
    const secs = Number(process.hrtime.bigint() - q.t0) / 1e9;
    repairMBps.push(q.lostBytes / 1e6 / secs);
    repairedMB.push(q.lostBytes / 1e6);
    await restart(q.victim);
    // Loaded repair: client uploads while it runs.
    const l = await killOne();
    let repairDone = false;
    const waitRepair = until(() => allAtR(l.live), 'repair done').then(() => (repairDone = true));
    const speeds = [];
    let overlappedAll = true;
    for (let k = 0; k < 2 && !repairDone; k++) {
      const t = process.hrtime.bigint();
      await put(base, `client/during-${r}-${k}.bin`, clientSize, seed++);
      if (repairDone) overlappedAll = false;
      speeds.push(clientSize / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
    }
    await waitRepair;
    if (overlappedAll && speeds.length) overlapped++;
    if (speeds.length) duringMBps.push(median(speeds));
    console.log(
      `run ${r + 1}: quiet: ${(q.lostBytes / 1e6).toFixed(1)} MB lost with ${q.victimName}, back at R in ${secs.toFixed(1)} s = ${(q.lostBytes / 1e6 / secs).toFixed(1)} MB/s; ` +
        `loaded: client ${speeds.map((x) => x.toFixed(1)).join(', ')} MB/s while ${l.victimName}'s ${(l.lostBytes / 1e6).toFixed(1)} MB were re-replicated`,
    );
    await restart(l.victim);
  }
  const result = {
    dataSet: `${dataMiB} MiB`,
    clientFile: `${clientMiB} MiB`,
    runs,
    nodes: 4,
    replicas: R,
    writeQuorum: 2,
    repairRateLimitBytesPerSec: Number(process.env.BENCH_REPAIR_RATE ?? 32 * MiB),
    reReplicationMBps: { median: +median(repairMBps).toFixed(1), all: repairMBps.map((x) => +x.toFixed(1)) },
    reReplicatedMB: repairedMB.map((x) => +x.toFixed(1)),
    clientBaselineMBps: { median: +median(baseline).toFixed(1), all: baseline.map((x) => +x.toFixed(1)) },
    clientDuringRepairMBps: { median: +median(duringMBps).toFixed(1), all: duringMBps.map((x) => +x.toFixed(1)) },
    clientFractionDuringRepair: +(median(duringMBps) / median(baseline)).toFixed(2),
    runsWhereBothClientUploadsOverlappedRepair: overlapped,
  };
  console.log(`\nre-replication after a node loss (4 nodes, R=3, limit ${(result.repairRateLimitBytesPerSec / MiB).toFixed(0)} MiB/s): median ${result.reReplicationMBps.median} MB/s  (runs: ${result.reReplicationMBps.all.join(', ')})`);
  console.log(`client upload ${clientMiB} MiB, no repair:     median ${result.clientBaselineMBps.median} MB/s  (runs: ${result.clientBaselineMBps.all.join(', ')})`);
  console.log(`client upload ${clientMiB} MiB, during repair: median ${result.clientDuringRepairMBps.median} MB/s  (runs: ${result.clientDuringRepairMBps.all.join(', ')})`);
  console.log(`client throughput during repair: ${(result.clientFractionDuringRepair * 100).toFixed(0)} % of the baseline`);
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'repair.json'), JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2));
} finally {
  await net.stop();
  if (!process.env.BENCH_KEEP) rmSync(root, { recursive: true, force: true });
}
