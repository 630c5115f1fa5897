#!/usr/bin/env node
// `node bench/crypto.mjs`: AES-256-GCM seal/open of 1 MiB and 4 MiB chunks through the crypto-service
// (a real process, SealChunk/OpenChunk over gRPC on loopback) against in-process Node crypto on the same
// data, in one run. Prints MB/s (MB = 10^6 B) and the service/in-process ratio (target >= 50%).
// Also, in the same run, the transport ceiling: a unary echo of the same payload through a server built
// like the crypto-service's (bench/echo-server.ts: startGrpcServer, same options and window), no work in
// between. A SealChunk or OpenChunk call moves what an echo moves, so the service cannot beat it; the
// table shows the service as a share of it too.
// Settings: BENCH_CRYPTO_MIB (256 MiB of plaintext per case), BENCH_CRYPTO_INFLIGHT (4 calls in flight),
// BENCH_CRYPTO_RUNS (3; the median is reported), BENCH_CRYPTO_SERVICE_JS (a crypto-service bundle to
// measure instead of dist/apps/crypto-service/main.js, for A/B runs). Builds the crypto-service first if
// dist/ lacks it.
// Every process of the run (this one, the service, the echo server) uses the project's malloc setting
// (GLIBC_TUNABLES, see TOOLCHAIN): this process re-executes itself with it when it is not set. The service
// and the echo server run with the project's V8 flags (VAULT_V8_FLAGS replaces them, as in tools/network.cjs).
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { median } from './lib.mjs';

const TUNABLES = 'glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824';
if (process.env.GLIBC_TUNABLES !== TUNABLES) {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, GLIBC_TUNABLES: TUNABLES } });
  process.exit(r.status ?? 1);
}

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const repo = join(dirname(new URL(import.meta.url).pathname), '..');
const MiB = 1024 * 1024;
const totalBytes = Number(process.env.BENCH_CRYPTO_MIB ?? 256) * MiB;
const inflight = Number(process.env.BENCH_CRYPTO_INFLIGHT ?? 4);
const runs = Number(process.env.BENCH_CRYPTO_RUNS ?? 3);
const FOLDER = 'a'.repeat(32);

const mainJs = process.env.BENCH_CRYPTO_SERVICE_JS || join(repo, 'dist/apps/crypto-service/main.js');
if (!existsSync(mainJs)) execFileSync(process.execPath, [join(repo, 'tools/build.mjs'), 'crypto-service', '--quiet'], { stdio: 'inherit' });
const tmp = mkdtempSync(join(tmpdir(), 'dv-bench-crypto-'));
const keyDir = join(tmp, 'keys');
const echoJs = join(tmp, 'echo-server.js');
await (await import('esbuild')).build({
  entryPoints: [join(repo, 'bench/echo-server.ts')],
  outfile: echoJs,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  tsconfig: join(repo, 'tsconfig.base.json'),
  logLevel: 'warning',
  nodePaths: [join(repo, 'node_modules')],
});

// The V8 flags every app process runs with (tools/network.cjs, the Dockerfile's ENTRYPOINT); VAULT_V8_FLAGS
// (space-separated) replaces them, as there.
const V8_FLAGS = process.env.VAULT_V8_FLAGS !== undefined ? process.env.VAULT_V8_FLAGS.split(' ').filter(Boolean) : ['--single-threaded-gc', '--max-semi-space-size=2'];

/** Starts `js` with `env`; resolves with the child and the port of its `listening` line. */
async function startServer(js, env) {
  const child = spawn(process.execPath, [...V8_FLAGS, js], { cwd: repo, env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', GLIBC_TUNABLES: TUNABLES, NODE_PATH: join(repo, 'node_modules'), ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      try {
        const j = JSON.parse(l);
        if (j.msg === 'listening') resolve(j.port);
      } catch {}
    });
    child.on('exit', (c) => reject(new Error(`${js} exited with ${c}`)));
  });
  return { child, port };
}
const service = await startServer(mainJs, { CRYPTO_PORT: '0', CRYPTO_KEY_DIR: keyDir });
const echo = await startServer(echoJs, {});
const port = service.port;

const def = protoLoader.loadSync(join(repo, 'proto/vault/crypto/v1/crypto.proto'), { keepCase: false, longs: String, defaults: true });
const varint = (n) => {
  const out = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
};
const field = (tag, bytes) => [Buffer.from([tag]), varint(bytes.length), bytes];
function encodeChunkRequest({ wrappedKey, context, payload }) {
  const ctx = Buffer.concat([...field(0x0a, Buffer.from(context.folder)), ...field(0x12, context.fileId), Buffer.from([0x18]), varint(context.index), Buffer.from([0x20, context.last ? 1 : 0])]);
  const head = Buffer.concat([...field(0x0a, wrappedKey), ...field(0x12, ctx), Buffer.from([0x1a]), varint(payload.length)]);
  const out = Buffer.allocUnsafe(head.length + payload.length);
  head.copy(out, 0);
  out.set(payload, head.length);
  return out;
}
/** The varint at `pos`: [value, position after it]. */
function readVarint(buf, pos) {
  let n = 0;
  for (let shift = 0; ; shift += 7) {
    const b = buf[pos++];
    n += (b & 127) * 2 ** shift;
    if (b < 128) return [n, pos];
  }
}
/** Field 1 (bytes) of a response, as a view. */
function decodeField1(buf) {
  let pos = 0;
  while (pos < buf.length) {
    const tag = buf[pos++];
    const [len, at] = readVarint(buf, pos);
    if (tag === 0x0a) return buf.subarray(at, at + len);
    pos = at + len;
  }
  return Buffer.alloc(0);
}
const bulk = (path) => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: encodeChunkRequest,
  requestDeserialize: (b) => b,
  responseSerialize: (b) => b,
  responseDeserialize: (b) => ({ payload: decodeField1(b) }),
});
/** A Chunks request: seq (field 1), then the SealChunkRequest (field 2) or OpenChunkRequest (field 3). */
function encodeChunksRequest({ seq, open, ...item }) {
  const inner = encodeChunkRequest(item);
  return Buffer.concat([Buffer.from([0x08]), varint(seq), Buffer.from([open ? 0x1a : 0x12]), varint(inner.length), inner]);
}
/** A Chunks response: its seq and the payload (field 1 of the sealed/opened message), or its error. */
function decodeChunksResponse(buf) {
  let pos = 0;
  let seq = 0;
  let payload;
  let error = false;
  while (pos < buf.length) {
    const tag = buf[pos++];
    let n;
    [n, pos] = readVarint(buf, pos);
    if (tag === 0x08) seq = n;
    else {
      if (tag === 0x12 || tag === 0x1a) payload = decodeField1(buf.subarray(pos, pos + n));
      if (tag === 0x22) error = true;
      pos += n;
    }
  }
  return { seq, payload, error };
}
const Svc = grpc.makeGenericClientConstructor(
  {
    createDataKey: def['vault.crypto.v1.CryptoService'].CreateDataKey,
    sealChunk: bulk('/vault.crypto.v1.CryptoService/SealChunk'),
    openChunk: bulk('/vault.crypto.v1.CryptoService/OpenChunk'),
    chunks: { path: '/vault.crypto.v1.CryptoService/Chunks', requestStream: true, responseStream: true, requestSerialize: encodeChunksRequest, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: decodeChunksResponse },
  },
  'CryptoService',
);
const client = new Svc(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
  'grpc.max_receive_message_length': 16 * MiB,
  'grpc.max_send_message_length': 16 * MiB,
  'grpc-node.flow_control_window': 16 * MiB, // as every channel of the project (libs/shared/src/grpc/options.ts)
});
const call = (m, req) => new Promise((resolve, reject) => client[m](req, (err, res) => (err ? reject(err) : resolve(res))));
const raw = (b) => b;
const Echo = grpc.makeGenericClientConstructor(
  {
    echo: { path: '/bench.v1.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
    echoStream: { path: '/bench.v1.Echo/EchoStream', requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
  },
  'Echo',
);
const echoClient = new Echo(`127.0.0.1:${echo.port}`, grpc.credentials.createInsecure(), {
  'grpc.max_receive_message_length': 16 * MiB,
  'grpc.max_send_message_length': 16 * MiB,
  'grpc-node.flow_control_window': 16 * MiB,
});
const echoCall = (payload) => new Promise((resolve, reject) => echoClient.echo(payload, (err, res) => (err ? reject(err) : resolve(res))));

/** CPU seconds (user + system) a child process has used so far (Linux /proc; clock ticks of 1/100 s). */
function childCpu(child) {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs `run` (resolving MB/s over `bytes`) and adds the CPU seconds per GB of `server` and of this process. */
async function withCpu(server, bytes, run) {
  const s0 = childCpu(server.child);
  const c0 = process.cpuUsage();
  const mbps = await run();
  const c = process.cpuUsage(c0);
  const gb = bytes / 1e9;
  return { mbps, serverCpu: (childCpu(server.child) - s0) / gb, clientCpu: (c.user + c.system) / 1e6 / gb };
}

/** `count` payloads echoed over one bidi stream, `inflight` outstanding at a time; MB/s. */
function streamed(count, payload) {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const call = echoClient.echoStream();
    let sent = 0;
    let received = 0;
    const send = () => {
      while (sent < count && sent - received < inflight) {
        sent++;
        call.write(payload);
      }
      if (sent === count) call.end();
    };
    call.on('data', (m) => {
      if (m.length !== payload.length) return reject(new Error('short stream echo'));
      received++;
      send();
    });
    call.on('error', reject);
    call.on('end', () => (received === count ? resolve((count * payload.length) / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9)) : reject(new Error(`stream echo ended after ${received}`))));
    send();
  });
}

/**
 * `count` items over one Chunks stream (what a node does), `inflight` outstanding at a time; `make(i)`
 * builds item i, `check(i, payload)` verifies its answer. MB/s over `bytes`.
 */
function chunksStreamed(count, bytes, make, check) {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const call = client.chunks();
    let sent = 0;
    let received = 0;
    const send = () => {
      while (sent < count && sent - received < inflight) call.write({ seq: sent + 1, ...make(sent++) });
      if (sent === count) call.end();
    };
    call.on('data', (m) => {
      if (m.error || !m.payload || m.seq !== received + 1) return reject(new Error(`Chunks item ${m.seq} failed`));
      check(received, m.payload);
      received++;
      send();
    });
    call.on('error', reject);
    call.on('end', () => (received === count ? resolve(bytes / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9)) : reject(new Error(`Chunks ended after ${received}`))));
    send();
  });
}

/** Runs `count` operations with `inflight` in flight; returns MB/s over `bytes` total. */
async function pumped(count, bytes, op) {
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inflight, count) }, async () => {
      while (next < count) await op(next++);
    }),
  );
  return bytes / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const results = [];
const { wrappedKey } = await call('createDataKey', { folder: FOLDER });
const fileId = randomBytes(16);

for (const chunkMiB of [1, 4]) {
  const size = chunkMiB * MiB;
  const count = Math.max(1, Math.floor(totalBytes / size));
  const plain = randomBytes(size); // the same data for both paths
  const ctx = (i) => ({ folder: FOLDER, fileId, index: i, last: false });
  const dataKey = randomBytes(32);
  const ad = Buffer.alloc(64, 7);
  const row = { chunkMiB, totalMiB: (count * size) / MiB, inflight, runs: [] };
  for (let r = 0; r < runs; r++) {
    // In process: the same work as SealChunk (AES-256-GCM seal + SHA-256 of the envelope, its ID) and
    // OpenChunk (AES-256-GCM open), one chunk per operation.
    const sealedLocal = [];
    const inSeal = await pumped(count, count * size, async (i) => {
      const nonce = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', dataKey, nonce);
      c.setAAD(ad);
      const ct = Buffer.concat([Buffer.from([1]), nonce, c.update(plain), c.final(), c.getAuthTag()]);
      createHash('sha256').update(ct).digest('hex');
      if (i === 0) sealedLocal.push(ct);
    });
    const env = sealedLocal[0];
    const inOpen = await pumped(count, count * size, async () => {
      const d = createDecipheriv('aes-256-gcm', dataKey, env.subarray(1, 13));
      d.setAAD(ad);
      d.setAuthTag(env.subarray(env.length - 16));
      d.update(env.subarray(13, env.length - 16));
      d.final();
    });
    // Through the service: SealChunk / OpenChunk unary calls.
    let remote;
    let checked = false;
    const svcSeal = await withCpu(service, count * size, () => pumped(count, count * size, async (i) => {
      const res = await call('sealChunk', { wrappedKey, context: ctx(i % 1024), payload: plain });
      if (res.payload.length !== size + 29) throw new Error('short envelope');
      if (i === 0) remote = { ct: Buffer.from(res.payload), ctx: ctx(0) };
    }));
    const svcOpen = await withCpu(service, count * size, () => pumped(count, count * size, async () => {
      const res = await call('openChunk', { wrappedKey, context: remote.ctx, payload: remote.ct });
      if (res.payload.length !== size) throw new Error('short plaintext');
      if (!checked) {
        if (!res.payload.equals(plain)) throw new Error('OpenChunk returned other bytes');
        checked = true;
      }
    }));
    // Through the service's Chunks stream (what nodes use): the same items, `inflight` outstanding.
    const svcSealStream = await withCpu(service, count * size, () =>
      chunksStreamed(count, count * size, (i) => ({ wrappedKey, context: ctx(i % 1024), payload: plain }), (_i, p) => {
        if (p.length !== size + 29) throw new Error('short envelope');
      }),
    );
    const svcOpenStream = await withCpu(service, count * size, () =>
      chunksStreamed(count, count * size, () => ({ open: true, wrappedKey, context: remote.ctx, payload: remote.ct }), (i, p) => {
        if (p.length !== size || (i === 0 && !p.equals(plain))) throw new Error('Chunks open returned other bytes');
      }),
    );
    // The transport alone: the same payload there and back, nothing done with it.
    const echoed = await withCpu(echo, count * size, () => pumped(count, count * size, async () => {
      const res = await echoCall(plain);
      if (res.length !== size) throw new Error('short echo');
    }));
    const streamEchoMBps = await streamed(count, plain);
    row.runs.push({
      inSeal,
      inOpen,
      svcSeal: svcSeal.mbps,
      svcOpen: svcOpen.mbps,
      svcSealStream: svcSealStream.mbps,
      svcOpenStream: svcOpenStream.mbps,
      sealStreamServerCpu: svcSealStream.serverCpu,
      sealStreamClientCpu: svcSealStream.clientCpu,
      openStreamServerCpu: svcOpenStream.serverCpu,
      openStreamClientCpu: svcOpenStream.clientCpu,
      echoMBps: echoed.mbps,
      streamEchoMBps,
      sealServerCpu: svcSeal.serverCpu,
      sealClientCpu: svcSeal.clientCpu,
      openServerCpu: svcOpen.serverCpu,
      openClientCpu: svcOpen.clientCpu,
      echoServerCpu: echoed.serverCpu,
      echoClientCpu: echoed.clientCpu,
    });
  }
  const m = (k) => median(row.runs.map((x) => x[k]));
  Object.assign(row, { inProcessSealMBps: m('inSeal'), inProcessOpenMBps: m('inOpen'), serviceSealMBps: m('svcSeal'), serviceOpenMBps: m('svcOpen'), streamSealMBps: m('svcSealStream'), streamOpenMBps: m('svcOpenStream'), echoMBps: m('echoMBps'), streamEchoMBps: m('streamEchoMBps') });
  // CPU seconds per GB of plaintext, server process and this (client) process: less sensitive to other
  // work on the machine than MB/s.
  row.cpuSecondsPerGB = Object.fromEntries(['sealServerCpu', 'sealClientCpu', 'openServerCpu', 'openClientCpu', 'sealStreamServerCpu', 'sealStreamClientCpu', 'openStreamServerCpu', 'openStreamClientCpu', 'echoServerCpu', 'echoClientCpu'].map((k) => [k.replace('Cpu', ''), +m(k).toFixed(2)]));
  row.sealOfEcho = row.serviceSealMBps / row.echoMBps;
  row.openOfEcho = row.serviceOpenMBps / row.echoMBps;
  row.sealRatio = row.serviceSealMBps / row.inProcessSealMBps;
  row.openRatio = row.serviceOpenMBps / row.inProcessOpenMBps;
  row.streamSealRatio = row.streamSealMBps / row.inProcessSealMBps;
  row.streamOpenRatio = row.streamOpenMBps / row.inProcessOpenMBps;
  results.push(row);
}

client.close();
echoClient.close();
for (const { child } of [service, echo]) {
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
}
rmSync(tmp, { recursive: true, force: true });

const f = (x) => x.toFixed(0).padStart(6);
console.log(`crypto bench: ${totalBytes / MiB} MiB per case, ${inflight} items in flight, median of ${runs} runs (MB/s)`);
const pct = (x) => `${(100 * x).toFixed(0).padStart(4)}%`;
console.log('chunk   in-proc seal  unary seal  ratio  stream seal  ratio | in-proc open  unary open  ratio  stream open  ratio | unary echo  seal/echo  open/echo | stream echo');
for (const r of results) {
  console.log(
    `${String(r.chunkMiB).padStart(2)} MiB        ${f(r.inProcessSealMBps)}      ${f(r.serviceSealMBps)}  ${pct(r.sealRatio)}       ${f(r.streamSealMBps)}  ${pct(r.streamSealRatio)} |        ${f(r.inProcessOpenMBps)}      ${f(r.serviceOpenMBps)}  ${pct(r.openRatio)}       ${f(r.streamOpenMBps)}  ${pct(r.streamOpenRatio)} |     ${f(r.echoMBps)}      ${pct(r.sealOfEcho)}      ${pct(r.openOfEcho)} |      ${f(r.streamEchoMBps)}`,
  );
}
console.log('CPU-s per GB  unary seal (server+client)  unary open  stream seal  stream open  unary echo');
for (const r of results) {
  const c = r.cpuSecondsPerGB;
  const pair = (a, b) => `${a.toFixed(2)} + ${b.toFixed(2)}`;
  console.log(`${String(r.chunkMiB).padStart(2)} MiB           ${pair(c.sealServer, c.sealClient)}                ${pair(c.openServer, c.openClient)}  ${pair(c.sealStreamServer, c.sealStreamClient)}  ${pair(c.openStreamServer, c.openStreamClient)}  ${pair(c.echoServer, c.echoClient)}`);
}
const reachable = results.every((r) => r.echoMBps >= 0.5 * Math.min(r.inProcessSealMBps, r.inProcessOpenMBps));
console.log(`transport ceiling (unary echo) ${reachable ? 'allows' : 'is below'} 50% of in-process for every case`);
const best = (r) => [Math.max(r.sealRatio, r.streamSealRatio), Math.max(r.openRatio, r.streamOpenRatio)];
const ok = results.every((r) => best(r).every((x) => x >= 0.5));
console.log(`target service >= 50% of in-process (best of unary and stream): ${ok ? 'met' : 'NOT met'}`);
console.log(JSON.stringify({ bench: 'crypto', node: process.version, results: results.map(({ runs: _r, ...rest }) => rest) }));
