#!/usr/bin/env node
// Cost of a vault-key rotation (and so of a shred) with real processes: a fresh local network (3 nodes +
// gateway, R=3, W=2) in a temp dir; stores BENCH_ROTATION_FILES small files (default 500, 1 KiB each,
// uploaded 8 at a time) and one BENCH_ROTATION_BIG_MIB file (default 64 MiB), then rotates
// BENCH_ROTATION_RUNS times (default 3) through POST /v1/keys/rotate and prints each rotation's wall time
// and per-manifest cost. The big file shows that the cost does not depend on bytes: no chunk is touched.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { startNetwork } = require('../tools/network.cjs');
const files = Number(process.env.BENCH_ROTATION_FILES ?? 500);
const bigMiB = Number(process.env.BENCH_ROTATION_BIG_MIB ?? 64);
const runs = Number(process.env.BENCH_ROTATION_RUNS ?? 3);

function call(base, token, method, path, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(base + path);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-length': body.length } : {}) } }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => (res.statusCode >= 300 ? reject(new Error(`${method} ${path}: ${res.statusCode} ${Buffer.concat(parts)}`)) : resolve(Buffer.concat(parts).toString())));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const root = mkdtempSync(join(tmpdir(), 'dv-bench-rotation-'));
const net = await startNetwork({ root, nodes: 3, output: 'silent' });
try {
  const base = net.gatewayUrl;
  const t = net.token;
  for (let until = Date.now() + 30_000; ; ) {
    const nodes = JSON.parse(await call(base, t, 'GET', '/v1/nodes')).nodes;
    if (nodes.filter((n) => n.state === 'connected').length === 2) break;
    if (Date.now() > until) throw new Error('peers did not connect');
    await new Promise((r) => setTimeout(r, 200));
  }
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < files) {
      const i = next++;
      await call(base, t, 'PUT', `/v1/files/bench/f${i}.txt`, Buffer.alloc(1024, i & 0xff));
    }
  }));
  if (bigMiB > 0) await call(base, t, 'PUT', '/v1/files/bench/big.bin', Buffer.alloc(bigMiB * 1024 * 1024, 7));
  console.log(`stored ${files} files of 1 KiB and one of ${bigMiB} MiB`);
  for (let r = 0; r < runs; r++) {
    const rep = JSON.parse(await call(base, t, 'POST', '/v1/keys/rotate'));
    console.log(`rotation ${r + 1}: ${rep.manifestsRewritten} manifests rewritten in ${rep.durationMs} ms (${(rep.durationMs / rep.manifestsRewritten).toFixed(2)} ms each, ${(rep.manifestsRewritten / (rep.durationMs / 1000)).toFixed(0)}/s), retired ${rep.retiredFingerprints.join(',')}`);
  }
} finally {
  await net.stop();
  rmSync(root, { recursive: true, force: true });
}
