/**
 * Load (issue #8, "Load"): 32 concurrent HTTP clients for a bounded time against a real network (3 nodes
 * + gateway, R=3, W=2), mixed small and large puts and gets (as bench/gateway-load.mjs): per client, by a
 * seeded draw, 45% put of a small file (64 KiB), 10% put of a large one (4 MiB), 45% get of a file it
 * stored before, checked against its SHA-256.
 *
 * Expected: zero errors (every put 201, every get 200 with the right bytes); latency percentiles printed
 * per operation; every process alive afterwards; and every process's peak RSS (VmHWM from /proc) under
 * its ceiling.
 *
 * Duration: the issue's figure, 60 s (`LOAD_SECONDS`; CI runs it, ~1.5 min of its budget). RSS ceilings: ones that hold today with room to spare (the
 * measured peaks are printed): 512 MiB for a peer-node (`LOAD_RSS_PEER_MIB`; the home node measured
 * 430-550 MiB before the node-wide memory budget, NODE_MEMORY_BUDGET_BYTES, and 337 MiB with its 64 MiB
 * default; the others ~150-170), 384 MiB for every other process (`LOAD_RSS_OTHER_MIB`; measured 85-230).
 * Issue #8's memory target is 150 MiB per process (single 2 GiB transfer: test/system/memory.spec.ts).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, request, setBearerToken } from '../helpers';
import { networkProcs, percentile, procStatusMiB, Rng } from '../fuzz-helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');

const SECONDS = Number(process.env['LOAD_SECONDS'] ?? 60);
const CLIENTS = Number(process.env['LOAD_CLIENTS'] ?? 32);
const RSS_PEER_MIB = Number(process.env['LOAD_RSS_PEER_MIB'] ?? 512);
const RSS_OTHER_MIB = Number(process.env['LOAD_RSS_OTHER_MIB'] ?? 384);
const ceiling = (name: string) => (name.endsWith('/peer') ? RSS_PEER_MIB : RSS_OTHER_MIB);
const SMALL = 64 * 1024;
const LARGE = 4 * 1024 * 1024;

jest.setTimeout(120_000 + SECONDS * 2000);

function body(size: number, seed: number): Buffer {
  const rng = new Rng(seed);
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE(Math.floor(rng.next() * 2 ** 32), i);
  return b;
}

describe(`load: ${CLIENTS} clients for ${SECONDS} s, mixed puts and gets (3 nodes + gateway, R=3)`, () => {
  let root: string;
  let net: any;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-load-'));
    net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'warn', NODE_HEARTBEAT_MS: '500' } });
    setBearerToken(net.token);
    await eventually(async () => (await request(`${net.gatewayUrl}/v1/nodes`, 'GET')).json.nodes.filter((n: any) => n.state === 'connected').length === 2, 30_000, 'peers connected');
  });

  afterAll(async () => {
    agent.destroy();
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  function call(method: string, path: string, payload?: Buffer): Promise<{ status: number; bytes: number; sha256: string }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { authorization: `Bearer ${net.token}` };
      if (payload) headers['content-length'] = payload.length;
      const req = http.request(`${net.gatewayUrl}${path}`, { method, headers, agent }, (res) => {
        const h = createHash('sha256');
        let n = 0;
        res.on('data', (d: Buffer) => {
          h.update(d);
          n += d.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: n, sha256: h.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  it('serves every request without an error; prints latencies; every process stays under its RSS ceiling', async () => {
    const bodies = { small: body(SMALL, 7), large: body(LARGE, 8) };
    const sha = { [SMALL]: createHash('sha256').update(bodies.small).digest('hex'), [LARGE]: createHash('sha256').update(bodies.large).digest('hex') };
    const lat: Record<'putSmall' | 'putLarge' | 'get', number[]> = { putSmall: [], putLarge: [], get: [] };
    const errors: string[] = [];
    let moved = 0;
    const started = Date.now();
    const until = started + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const rng = new Rng(c + 1);
        const stored: { path: string; size: number }[] = [];
        while (Date.now() < until) {
          const draw = rng.int(100);
          const t = process.hrtime.bigint();
          let kind: keyof typeof lat;
          try {
            if (draw < 55 || stored.length === 0) {
              const large = draw >= 45 && draw < 55;
              kind = large ? 'putLarge' : 'putSmall';
              const path = `/v1/files/load/c${c}/f${stored.length}.bin`;
              const r = await call('PUT', path, large ? bodies.large : bodies.small);
              if (r.status !== 201) errors.push(`PUT ${path}: ${r.status}`);
              else {
                stored.push({ path, size: large ? LARGE : SMALL });
                moved += large ? LARGE : SMALL;
              }
            } else {
              kind = 'get';
              const f = stored[rng.int(stored.length)]!;
              const r = await call('GET', f.path);
              if (r.status !== 200 || r.bytes !== f.size || r.sha256 !== sha[f.size]) errors.push(`GET ${f.path}: ${r.status}, ${r.bytes} bytes${r.sha256 !== sha[f.size] ? ', wrong SHA-256' : ''}`);
              moved += r.bytes;
            }
          } catch (err) {
            kind = 'get';
            errors.push(String(err));
          }
          lat[kind].push(Number(process.hrtime.bigint() - t) / 1e6);
        }
      }),
    );
    const secs = (Date.now() - started) / 1000;
    const ops = lat.putSmall.length + lat.putLarge.length + lat.get.length;
    const lines = [`load: ${CLIENTS} clients, ${secs.toFixed(1)} s, R=3: ${ops} requests (${(ops / secs).toFixed(1)}/s), ${(moved / 1e6 / secs).toFixed(1)} MB/s of file data, ${errors.length} errors`];
    for (const [k, xs] of Object.entries(lat)) {
      lines.push(`  ${k.padEnd(9)} n=${String(xs.length).padStart(5)}  p50 ${percentile(xs, 50).toFixed(0).padStart(6)} ms  p90 ${percentile(xs, 90).toFixed(0).padStart(6)} ms  p99 ${percentile(xs, 99).toFixed(0).padStart(6)} ms  max ${percentile(xs, 100).toFixed(0).padStart(6)} ms`);
    }
    const procs = networkProcs(net);
    const peaks = procs.map((p) => ({ name: p.name, running: p.running, hwm: procStatusMiB(p.pid, 'VmHWM') }));
    lines.push(`  peak RSS (VmHWM; ceilings ${RSS_PEER_MIB} MiB peer-node, ${RSS_OTHER_MIB} MiB others): ${peaks.map((p) => `${p.name} ${p.hwm.toFixed(0)}`).join(', ')} MiB`);
    console.log(lines.join('\n'));
    expect(errors.slice(0, 10)).toEqual([]);
    expect(lat.putSmall.length).toBeGreaterThan(0);
    expect(lat.putLarge.length).toBeGreaterThan(0);
    expect(lat.get.length).toBeGreaterThan(0);
    for (const p of peaks) {
      expect([p.name, p.running]).toEqual([p.name, true]);
      expect([p.name, p.hwm, p.hwm < ceiling(p.name)]).toEqual([p.name, p.hwm, true]);
    }
    expect((await request(`${net.gatewayUrl}/readyz`, 'GET')).status).toBe(200);
  });
});
