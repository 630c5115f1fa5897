#!/usr/bin/env node
// `node bench/gateway-load.mjs` (after `node tools/build.mjs`): a fresh local network (3 nodes + gateway,
// R=3) and BENCH_CLIENTS (32) concurrent HTTP clients doing mixed puts and gets for BENCH_SECONDS (20):
// per client, by a seeded draw, 45% put of a small file (64 KiB), 10% put of a large one (BENCH_LARGE_MIB,
// 8), 45% get of a file it stored before (checked against its SHA-256). Prints throughput, p50/p99
// latency per operation, errors, and the gateway's RSS (sampled every 100 ms, and its peak VmHWM).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { startNetwork } = require('../tools/network.cjs');

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 32);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const SMALL = 64 * 1024;
const LARGE = Number(process.env.BENCH_LARGE_MIB ?? 8) * 1024 * 1024;

function bytes(size, seed) {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}
const SMALL_BODY = bytes(SMALL, 7);
const LARGE_BODY = bytes(LARGE, 8);
const SHA = new Map([[SMALL, createHash('sha256').update(SMALL_BODY).digest('hex')], [LARGE, createHash('sha256').update(LARGE_BODY).digest('hex')]]);

const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
function call(base, token, method, path, body) {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${token}` };
    if (body) headers['content-length'] = body.length;
    const req = http.request(`${base}${path}`, { method, headers, agent }, (res) => {
      const h = createHash('sha256');
      let n = 0;
      res.on('data', (d) => {
        h.update(d);
        n += d.length;
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes: n, sha256: h.digest('hex') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const rssMiB = (pid, key) => Number((/^(?:VmRSS|VmHWM):\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter((l) => l.startsWith(key)).join('\n')) ?? [0, 0])[1]) / 1024;
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

const root = mkdtempSync(join(tmpdir(), 'dv-load-'));
const net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'warn' } });
try {
  for (let i = 0; ; i++) {
    const r = await call(net.gatewayUrl, net.token, 'GET', '/v1/nodes');
    if (r.status === 200 && i > 5) break;
    await new Promise((res) => setTimeout(res, 300));
  }
  const pid = net.gateway.child.pid;
  const rssStart = rssMiB(pid, 'VmRSS');
  let rssMax = rssStart;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMiB(pid, 'VmRSS'))), 100);
  const lat = { putSmall: [], putLarge: [], get: [] };
  let errors = 0;
  let moved = 0;
  const firstErrors = [];
  const until = Date.now() + SECONDS * 1000;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      let x = c + 1;
      const stored = [];
      while (Date.now() < until) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const draw = (x >>> 8) % 100;
        const t = process.hrtime.bigint();
        let kind;
        let ok;
        try {
          if (draw < 55 || stored.length === 0) {
            const large = draw >= 45 && draw < 55;
            kind = large ? 'putLarge' : 'putSmall';
            const path = `/v1/files/load/c${c}/f${stored.length}.bin`;
            const r = await call(net.gatewayUrl, net.token, 'PUT', path, large ? LARGE_BODY : SMALL_BODY);
            ok = r.status === 201;
            if (ok) {
              stored.push({ path, size: large ? LARGE : SMALL });
              moved += large ? LARGE : SMALL;
            }
          } else {
            kind = 'get';
            const f = stored[(x >>> 4) % stored.length];
            const r = await call(net.gatewayUrl, net.token, 'GET', f.path);
            ok = r.status === 200 && r.bytes === f.size && r.sha256 === SHA.get(f.size);
            moved += r.bytes;
          }
        } catch (err) {
          ok = false;
          if (firstErrors.length < 5) firstErrors.push(String(err));
        }
        if (!ok) errors++;
        lat[kind].push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }),
  );
  const secs = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const ops = lat.putSmall.length + lat.putLarge.length + lat.get.length;
  console.log(`${CLIENTS} clients, ${secs.toFixed(1)} s, R=3: ${ops} requests (${(ops / secs).toFixed(1)}/s), ${(moved / 1e6 / secs).toFixed(1)} MB/s of file data, ${errors} errors`);
  for (const [k, xs] of Object.entries(lat)) console.log(`  ${k.padEnd(9)} n=${String(xs.length).padStart(5)}  p50 ${pct(xs, 50).toFixed(0).padStart(6)} ms  p99 ${pct(xs, 99).toFixed(0).padStart(6)} ms`);
  console.log(`  gateway RSS: ${rssStart.toFixed(0)} MiB at start, ${rssMax.toFixed(0)} MiB max while loaded (VmHWM ${rssMiB(pid, 'VmHWM').toFixed(0)} MiB)`);
  if (firstErrors.length) console.log('  first errors:', firstErrors);
} finally {
  agent.destroy();
  await net.stop();
  rmSync(root, { recursive: true, force: true });
}
