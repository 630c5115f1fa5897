/**
 * Hostile HTTP clients (issue #8, "Hostile clients and peers"): a seeded fuzz pass over every route of the
 * gateway's OpenAPI document (/docs-json) on a real network (3 nodes + gateway): malformed paths
 * (traversal, encodings, huge, control characters), methods, headers (Range, If-None-Match, Content-Length
 * lies, Authorization garbage), query values and JSON bodies (wrong types, huge, deep nesting), then random
 * combinations of them. Requests are written raw to a socket, so nothing is cleaned up by a client library.
 *
 * Expected: no process dies and /readyz stays 200; no 5xx (a client mistake gets a 4xx with the error
 * shape `{"error": {"code", "message"}}`; cases Node's HTTP parser answers itself, before the app, need
 * only a 4xx); nothing is written: the listing, the known file's versions, the tokens, the messages, the
 * vault key and every node's data, key and gateway directories are as they were.
 *
 * The only valid writes are made on purpose before the snapshot (one file, one read-only token). Routes that
 * are valid whatever their input (POST /v1/keys/rotate, POST /v1/recover) are fuzzed without a valid token only.
 * The seed is printed; FUZZ_SEED=<n> replays a run; FUZZ_HTTP_CASES sets the number of random cases (300).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, putSeeded, request, setBearerToken, walk } from '../helpers';
import { diskSnapshot, fuzzSeed, networkProcs, rawHttp, Rng, type RawAnswer } from '../fuzz-helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');

jest.setTimeout(180_000);

const RANDOM_CASES = Number(process.env['FUZZ_HTTP_CASES'] ?? 300);
const KNOWN = 'fuzz/known.bin';
const KNOWN_SIZE = 1024 * 1024 + 7;

/** One request to send. `protocol`: Node's HTTP parser may answer it before the app (no JSON shape needed). */
interface Case {
  name: string;
  method: string;
  target: string;
  headers?: [string, string][];
  body?: Buffer | string;
  /** Declared Content-Length (default: the body's length; `null`: none). */
  contentLength?: string | null;
  protocol?: boolean;
  /** The client stops early: half-close, or destroy the socket after this many ms. */
  halfClose?: boolean;
  destroyAfterMs?: number;
  /** May get no answer at all (the client itself broke the exchange off). */
  mayGetNoAnswer?: boolean;
  /** May succeed (a read, or a harmless request with odd but legal input): 2xx/3xx allowed. */
  maySucceed?: boolean;
  noAuth?: boolean;
  auth?: string;
}

describe('HTTP API fuzz (3 nodes + gateway, seeded)', () => {
  let root: string;
  let net: any;
  let host: string;
  let port: number;
  let token: string;
  let readToken: string;
  let etag: string;
  let rng: Rng;
  let seed: number;
  let routes: { path: string; method: string; hasPathParam: boolean }[] = [];
  const problems: string[] = [];
  let sent = 0;
  let before: Record<string, unknown>;
  let ownerDir: string;
  let ownerObjects = 0;
  const slow: string[] = [];

  const dirs = () => [...net.nodes.flatMap((n: any) => [n.dataDir, n.keysDir, n.identityDir]), join(root, 'gateway')];

  /** Everything a request must not change. */
  async function state(): Promise<Record<string, unknown>> {
    const get = async (p: string) => (await request(`${net.gatewayUrl}${p}`, 'GET')).json;
    return {
      files: await get('/v1/files'),
      versions: await get(`/v1/versions/${KNOWN}`),
      tokens: await get('/v1/tokens'),
      messages: ((await get('/v1/messages')).messages ?? []).length,
      key: (await get('/v1/keys')).fingerprint,
      disk: await diskSnapshot(dirs()),
    };
  }

  beforeAll(async () => {
    seed = fuzzSeed('HTTP fuzz');
    rng = new Rng(seed);
    root = await mkdtemp(join(tmpdir(), 'dv-fuzz-http-'));
    net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'warn', NODE_HEARTBEAT_MS: '500' } });
    const u = new URL(net.gatewayUrl);
    host = u.hostname;
    port = Number(u.port);
    token = net.token;
    setBearerToken(token);
    await eventually(async () => (await request(`${net.gatewayUrl}/v1/nodes`, 'GET')).json.nodes.filter((n: any) => n.state === 'connected').length === 2, 30_000, 'peers connected');
    // The valid writes made on purpose: one file (so that Range, If-None-Match and versions have a target)
    // and a read-only token (to try writes with it).
    const put = await putSeeded(net.gatewayUrl, KNOWN, KNOWN_SIZE, 5);
    expect(put.status).toBe(201);
    etag = `"${put.json.sha256}"`;
    const t = await request(`${net.gatewayUrl}/v1/tokens`, 'POST', undefined, { 'content-type': 'application/json', 'content-length': 0 });
    expect(t.status).toBe(201);
    readToken = t.json.token;
    // Wait for the background third copies, so that the disks are at rest before the snapshot.
    const count = async (i: number) => (await walk(net.nodes[i].dataDir)).filter((f) => !f.includes('/.')).length;
    await eventually(async () => (await count(1)) === (await count(0)) && (await count(2)) === (await count(0)), 30_000, 'third copies');
    const docs = await request(`${net.gatewayUrl}/docs-json`, 'GET');
    for (const [path, ops] of Object.entries<any>(docs.json.paths)) {
      for (const method of Object.keys(ops)) routes.push({ path, method: method.toUpperCase(), hasPathParam: /\{path\}/.test(path) });
    }
    ownerDir = join(net.nodes[0].dataDir, (await request(`${net.gatewayUrl}/v1/node`, 'GET')).json.serverId);
    ownerObjects = (await walk(ownerDir)).length;
    before = await state();
  });

  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  /** Sends one case and records what is wrong with its answer. */
  async function send(c: Case): Promise<RawAnswer> {
    sent++;
    const body = c.body === undefined ? undefined : Buffer.isBuffer(c.body) ? c.body : Buffer.from(c.body, 'utf8');
    const lines = [`${c.method} ${c.target} HTTP/1.1`, `Host: ${host}:${port}`, 'Connection: close'];
    if (!c.noAuth) lines.push(`Authorization: ${c.auth ?? `Bearer ${token}`}`);
    for (const [k, v] of c.headers ?? []) lines.push(`${k}: ${v}`);
    const cl = c.contentLength === undefined ? (body ? String(body.length) : undefined) : c.contentLength;
    if (cl !== null && cl !== undefined) lines.push(`Content-Length: ${cl}`);
    const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
    const t0 = Date.now();
    const a = await rawHttp(host, port, body ? Buffer.concat([head, body]) : head, { halfClose: c.halfClose, destroyAfterMs: c.destroyAfterMs, timeoutMs: 15_000 });
    const what = `[seed ${seed}] ${c.name}: ${c.method} ${c.target.length > 120 ? c.target.slice(0, 120) + '…' : c.target}`;
    const ms = Date.now() - t0;
    if (ms > 1000) slow.push(`${what} ${ms} ms`);
    // After anything but a read, the owner's folder must hold the same objects: names the request that wrote.
    if (c.method !== 'GET' && c.method !== 'HEAD') {
      const n = (await walk(ownerDir)).length;
      if (n !== ownerObjects) {
        problems.push(`${what} -> the owner's folder went from ${ownerObjects} to ${n} objects (status ${a.status} ${a.body.slice(0, 200)})`);
        ownerObjects = n;
      }
    }
    if (a.closed || a.status === 0) {
      if (!c.mayGetNoAnswer && !c.protocol) problems.push(`${what} -> no answer`);
      return a;
    }
    if (a.status >= 500) problems.push(`${what} -> ${a.status} ${a.body.slice(0, 200)}`);
    else if (a.status < 400 && !c.maySucceed) problems.push(`${what} -> unexpected success ${a.status}`);
    else if (a.status >= 400 && c.method !== 'HEAD' && !c.protocol) {
      let shape = false;
      try {
        const e = JSON.parse(a.body).error;
        shape = typeof e.code === 'string' && typeof e.message === 'string';
      } catch {
        shape = false;
      }
      if (!shape) problems.push(`${what} -> ${a.status} without the error shape: ${a.body.slice(0, 120)}`);
    }
    return a;
  }

  function expectNoProblems() {
    const p = problems.splice(0);
    expect(p).toEqual([]);
  }

  // --- the corpus -------------------------------------------------------------------------------------

  /** Paths that are refused (400) by the path rules, or at worst name a file that does not exist. */
  const BAD_PATHS = [
    '..', '../etc/passwd', 'fz/../../etc/passwd', '%2e%2e', '%2e%2e/fz', 'fz/%2e%2e/x', '%2E%2E%2Fetc', '.', 'fz/./x', 'fz//x', '/fz', 'fz/',
    'fz%2Fx', 'fz%2fx', '%2F', 'fz%5Cx', 'fz\\x', '..\\..\\x', '%00', 'fz%00x', 'fz/%00', '%01', 'fz%7f', 'fz%0d%0aX-Injected:%201', '%0a',
    '%zz', '%', 'fz%', 'fz%2', '%c0%ae%c0%ae/x', '%e0%80%ae', '%ff%fe', '%ed%a0%80', '..;/x', '%252e%252e/x-missing', '%u002e%u002e',
  ];
  /** Paths the gateway may accept as names: fine for reads, deletes of what does not exist. */
  const ODD_NAMES = ['..;/x', '%252e%252e/x-missing', 'fz-%20space', 'fz-%F0%9F%92%A9', 'fz-' + 'x'.repeat(300), 'fz/' + 'a/'.repeat(200) + 'b', 'fz-%C3%A9t%C3%A9', 'fz-*?[]', "fz-'\"<>", 'fz-;,=&+$'];
  const HUGE_PATHS = ['fz-' + 'x'.repeat(12_000), 'fz-' + '%2e'.repeat(4000), 'fz-' + 'y'.repeat(70_000)];

  const prefixOf = (route: string) => route.replace(/\{path\}.*$/, '');

  it('reads the routes from /docs-json', () => {
    const names = routes.map((r) => `${r.method} ${r.path}`);
    for (const must of ['PUT /v1/files/{path}', 'GET /v1/files/{path}', 'DELETE /v1/files/{path}', 'GET /v1/files', 'POST /v1/messages', 'POST /v1/tokens', 'DELETE /v1/shred/{path}']) {
      expect(names).toContain(must);
    }
    console.log(`HTTP fuzz: ${routes.length} routes from /docs-json`);
  });

  it('malformed, encoded, huge and control-character paths on every {path} route: 4xx, nothing written', async () => {
    for (const r of routes.filter((x) => x.hasPathParam)) {
      for (const p of [...BAD_PATHS, ...ODD_NAMES, ...HUGE_PATHS]) {
        const target = prefixOf(r.path) + p;
        const odd = ODD_NAMES.includes(p) || HUGE_PATHS.includes(p);
        if (r.method === 'PUT') {
          // A body that never arrives in full: a path that is accepted starts an upload that must not finish.
          await send({ name: 'bad path, short body', method: 'PUT', target, body: 'abc', contentLength: '1000', destroyAfterMs: 300, mayGetNoAnswer: odd, protocol: HUGE_PATHS.includes(p) });
        } else {
          await send({ name: 'bad path', method: r.method, target, protocol: HUGE_PATHS.includes(p), maySucceed: false });
        }
      }
      // Raw bytes Node's client would refuse: a space, a tab, a raw control byte, a raw non-ASCII byte.
      for (const raw of ['fz x', 'fz\tx', 'fz\x01x', 'fz\xffx', 'fz\x7fx']) {
        await send({ name: 'raw byte in path', method: r.method === 'PUT' ? 'GET' : r.method, target: prefixOf(r.path) + raw, protocol: true });
      }
    }
    expectNoProblems();
  });

  it('unknown and unsupported methods on every route: 4xx with the error shape', async () => {
    const methods = ['PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'MKCOL', 'LOCK', 'FOO', 'PUT', 'POST', 'DELETE', 'GET'];
    for (const r of routes) {
      const target = r.path.replace('{path}', 'fz-missing/x.bin').replace('{id}', 'no-such-id');
      for (const m of methods) {
        if (m === r.method) continue;
        // A method another route of the same path serves is legal: skip those (they are fuzzed elsewhere).
        if (routes.some((o) => o.path === r.path && o.method === m)) continue;
        // GET of a {path} route of files/versions is a read of a missing file (404); PUT of one would write.
        if (m === 'PUT' && r.hasPathParam) continue;
        await send({ name: `method ${m}`, method: m, target, body: m === 'POST' || m === 'PUT' || m === 'PATCH' ? '{}' : undefined, protocol: m === 'FOO' || m === 'TRACE' });
      }
    }
    for (const raw of ['G\x00T', 'GET GET', '\x16\x03\x01', 'get']) await send({ name: 'raw method', method: raw, target: '/v1/files', protocol: true });
    expectNoProblems();
  });

  it('Authorization garbage on every route: 401 (and 403 for writes with a read-only token), nothing written', async () => {
    const garbage = ['', 'Bearer', 'Bearer ', 'Bearer dvt_', 'Bearer dvt__', 'Bearer dvt_x_y', 'Bearer dvt_' + 'a'.repeat(8000), 'Basic Zm9vOmJhcg==', 'Bearer ' + token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), `Bearer ${token}x`, `Bearer  ${token.slice(1)}`, 'Bearer \u00ff\u00fe', 'Digest username="x"', 'Bearer null'];
    for (const r of routes) {
      if (r.path === '/healthz' || r.path === '/readyz' || r.path === '/docs-json' || r.path === '/docs') continue;
      const target = r.path.replace('{path}', r.method === 'GET' || r.method === 'HEAD' ? KNOWN : 'fz-auth/x.bin').replace('{id}', 'no-such-id');
      for (const g of garbage) {
        await send({ name: `Authorization ${JSON.stringify(g.slice(0, 30))}`, method: r.method, target, auth: g, body: r.method === 'POST' || r.method === 'PUT' ? '{}' : undefined });
      }
      await send({ name: 'no Authorization', method: r.method, target, noAuth: true, body: r.method === 'POST' || r.method === 'PUT' ? '{}' : undefined });
    }
    // Writes with a read-only token, also on the known file and on the routes that change state whatever their input.
    for (const [m, t] of [['PUT', `/v1/files/${KNOWN}`], ['DELETE', `/v1/files/${KNOWN}`], ['DELETE', `/v1/versions/${KNOWN}?all=true`], ['POST', `/v1/versions/${KNOWN}?version=1`], ['DELETE', `/v1/shred/${KNOWN}`], ['POST', '/v1/keys/rotate'], ['POST', '/v1/recover'], ['POST', '/v1/tokens'], ['GET', '/v1/tokens'], ['POST', '/v1/messages']] as const) {
      await send({ name: 'read-only token', method: m, target: t, auth: `Bearer ${readToken}`, body: m === 'PUT' ? 'x'.repeat(10) : m === 'POST' ? '{"topic":"fuzz","body":"x"}' : undefined });
    }
    expectNoProblems();
  });

  it('Range, If-None-Match, If-Range and other header garbage on reads: never 5xx', async () => {
    const ranges = ['bytes=abc', 'bytes=5-1', 'bytes=-0', 'bytes=--1', 'bytes=0--1', `bytes=${KNOWN_SIZE}-`, `bytes=${KNOWN_SIZE + 10}-${KNOWN_SIZE + 20}`, 'bytes=99999999999999999999-', 'bytes=0-99999999999999999999', 'bytes=1e3-2e3', 'bytes=0x10-0x20', 'bytes= 0 - 1 ', 'bytes=0-1,2-3', Array.from({ length: 300 }, (_, i) => `${i}-${i}`).join(',').replace(/^/, 'bytes='), 'items=0-1', 'bytes=', 'bytes', '=', 'bytes=-', 'bytes=-99999999999999999999', 'bytes=\u00ff', 'bytes=0-0', 'bytes=-1'];
    const tags = ['*', '"abc"', 'W/"abc"', etag, `W/${etag}`, `${etag}, "x"`, 'garbage', '"' + 'a'.repeat(8000) + '"', '""', '"', ',,,,', '\u00ff'];
    for (const m of ['GET', 'HEAD']) {
      for (const r of ranges) await send({ name: `Range ${r.slice(0, 40)}`, method: m, target: `/v1/files/${KNOWN}`, headers: [['Range', r]], maySucceed: true });
      for (const t of tags) await send({ name: `If-None-Match ${t.slice(0, 40)}`, method: m, target: `/v1/files/${KNOWN}`, headers: [['If-None-Match', t]], maySucceed: true });
      for (const t of tags) await send({ name: `If-Range ${t.slice(0, 40)}`, method: m, target: `/v1/files/${KNOWN}`, headers: [['If-Range', t], ['Range', 'bytes=0-9']], maySucceed: true });
      for (const [k, v] of [['If-Modified-Since', 'yesterday'], ['If-Unmodified-Since', '\u00ff'], ['Accept', '*/*;q=abc'], ['Accept-Encoding', 'gzip;q=2, br, ' + 'x,'.repeat(1000)], ['Cookie', 'a=' + 'b'.repeat(6000)], ['X-Forwarded-For', '::::'], ['Content-Type', 'application/json; charset=nonsense']]) {
        await send({ name: `header ${k}`, method: m, target: `/v1/files/${KNOWN}`, headers: [[k, v]], maySucceed: true });
      }
    }
    // A header block bigger than Node's limit (16 KiB): 431 from the parser.
    await send({ name: 'huge header block', method: 'GET', target: '/v1/files', headers: [['X-Big', 'z'.repeat(20_000)]], protocol: true });
    await send({ name: 'control character in a header', method: 'GET', target: '/v1/files', headers: [['X-Bad', 'a\x01b']], protocol: true, maySucceed: true });
    await send({ name: 'header without a colon', method: 'GET', target: '/v1/files', headers: [['X-No-Colon-Here', '']].map(([k]) => [k!, ''] as [string, string]), protocol: true, maySucceed: true });
    expectNoProblems();
  });

  it('Content-Length lies and broken bodies on uploads: 4xx or a dropped connection, no version written', async () => {
    const target = '/v1/files/fz-lies/upload.bin';
    const cases: Case[] = [
      { name: 'declares 1000, sends 10, half-closes', method: 'PUT', target, body: '0123456789', contentLength: '1000', halfClose: true, mayGetNoAnswer: true, protocol: true },
      { name: 'declares 1 MiB, sends 64 KiB, disconnects', method: 'PUT', target, body: Buffer.alloc(65536, 7), contentLength: String(1 << 20), destroyAfterMs: 500, mayGetNoAnswer: true },
      { name: 'Content-Length -1', method: 'PUT', target, body: 'x', contentLength: '-1', protocol: true },
      { name: 'Content-Length abc', method: 'PUT', target, body: 'x', contentLength: 'abc', protocol: true },
      { name: 'Content-Length 1e3', method: 'PUT', target, body: 'x', contentLength: '1e3', protocol: true },
      { name: 'two Content-Lengths', method: 'PUT', target, body: 'xy', contentLength: '2', headers: [['Content-Length', '5']], protocol: true },
      { name: 'Content-Length and chunked', method: 'PUT', target, body: '2\r\nxy\r\n0\r\n\r\n', headers: [['Transfer-Encoding', 'chunked']], protocol: true },
      { name: 'Transfer-Encoding garbage', method: 'PUT', target, body: 'xy', contentLength: null, headers: [['Transfer-Encoding', 'gzip, garbage']], protocol: true },
      { name: 'chunked with a bad chunk size mid-body', method: 'PUT', target, body: '4\r\nabcd\r\nzz\r\nefgh\r\n0\r\n\r\n', contentLength: null, headers: [['Transfer-Encoding', 'chunked']], protocol: true, mayGetNoAnswer: true },
      // Without a size the node cannot tell a cut body by its length: the gateway must not let it commit.
      ...[0, 50, 300].map((ms): Case => ({ name: `chunked, 64 KiB, then the client disconnects after ${ms} ms`, method: 'PUT', target, body: Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(65536, 3), Buffer.from('\r\n')]), contentLength: null, headers: [['Transfer-Encoding', 'chunked']], destroyAfterMs: ms, mayGetNoAnswer: true })),
      { name: 'chunked, cut before the last chunk', method: 'PUT', target, body: '4\r\nabcd\r\n', contentLength: null, headers: [['Transfer-Encoding', 'chunked']], halfClose: true, mayGetNoAnswer: true, protocol: true },
      { name: 'Content-Length beyond any upload limit', method: 'PUT', target, body: 'x', contentLength: '99999999999999999', destroyAfterMs: 2000, mayGetNoAnswer: true },
      { name: 'Content-Length 2^64', method: 'PUT', target, body: 'x', contentLength: '18446744073709551616', protocol: true, mayGetNoAnswer: true },
      { name: 'Expect: garbage', method: 'PUT', target, body: 'x', headers: [['Expect', 'teapot']], protocol: true },
      { name: 'messages body cut short', method: 'POST', target: '/v1/messages', body: '{"topic":"fz","bo', contentLength: '100', halfClose: true, mayGetNoAnswer: true, protocol: true },
      { name: 'tokens body cut short', method: 'POST', target: '/v1/tokens', body: '{"name":"fz","sc', contentLength: '100', halfClose: true, mayGetNoAnswer: true, protocol: true },
    ];
    for (const c of cases) await send(c);
    expectNoProblems();
    // Nothing was written under that name: not even a version that failed.
    expect((await request(`${net.gatewayUrl}/v1/versions/fz-lies/upload.bin`, 'GET')).status).toBe(404);
  });

  it('bad query values on every route: 4xx, never 5xx', async () => {
    const values = ['', 'abc', '-1', '0', '1.5', '1e999', '99999999999999999999', 'NaN', 'Infinity', '0x10', '%00', '%ff', 'a'.repeat(5000), 'true', '[]', '{}', '%201'];
    const keys = ['version', 'limit', 'after', 'prefix', 'since', 'topic', 'all', 'wait'];
    for (const r of routes) {
      if (r.method === 'PUT' || (r.method === 'POST' && (r.path === '/v1/keys/rotate' || r.path === '/v1/recover'))) continue;
      if (r.method === 'POST' && r.path === '/v1/tokens') continue; // any query + a valid body creates a token: bodies are fuzzed below
      const base = r.path.replace('{path}', r.method === 'GET' || r.method === 'HEAD' ? KNOWN : 'fz-missing/q.bin').replace('{id}', 'no-such-id');
      for (const k of keys) {
        for (let i = 0; i < 4; i++) {
          const v = rng.pick(values);
          await send({ name: `query ${k}=${v.slice(0, 20)}`, method: r.method, target: `${base}?${k}=${v}`, maySucceed: r.method === 'GET' || r.method === 'HEAD', body: r.method === 'POST' ? '{}' : undefined });
        }
        // The same key twice (Express makes an array of it), and a key with brackets (an object).
        await send({ name: `query ${k} twice`, method: r.method, target: `${base}?${k}=1&${k}=2`, maySucceed: r.method === 'GET' || r.method === 'HEAD', body: r.method === 'POST' ? '{}' : undefined });
        await send({ name: `query ${k}[a]`, method: r.method, target: `${base}?${k}[a]=1&${k}[b][c]=2`, maySucceed: r.method === 'GET' || r.method === 'HEAD', body: r.method === 'POST' ? '{}' : undefined });
      }
    }
    expectNoProblems();
  });

  it('JSON bodies with wrong types, huge and deeply nested: 4xx, nothing sent nor created', async () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    const deepObj = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    const common = ['', '{', 'null', 'true', '1', '"str"', '[]', '[1,2]', deep(100_000), deepObj(50_000), '\u00ff\u00fe', '{"a":1}'.repeat(3), '{"' + 'k'.repeat(1 << 20) + '":1}'];
    const messages = [
      '{}', '{"topic":1}', '{"topic":""}', '{"topic":null}', '{"topic":["a"]}', '{"topic":{"a":1}}', '{"topic":"fz","body":1}', '{"topic":"fz","body":{}}', '{"topic":"fz","to":5}', '{"topic":"fz","to":"not-a-server-id"}', '{"topic":"fz","to":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}',
      '{"topic":"fz","body":"a","bodyBase64":"YQ=="}', '{"topic":"fz","bodyBase64":"***"}', '{"topic":"fz","bodyBase64":5}', '{"topic":"' + 'a'.repeat(65) + '"}', '{"topic":"-bad"}', '{"topic":"bad topic"}', '{"topic":"a\\u0000b"}',
      JSON.stringify({ topic: 'fz', body: 'x'.repeat(65537) }), JSON.stringify({ topic: 'fz', body: 'x'.repeat(2 << 20) }),
    ];
    const tokens = ['{"name":5}', '{"name":["a"]}', '{"name":{"a":1}}', '{"scope":"admin"}', '{"scope":5}', '{"scope":["write"]}', '{"name":"fz","scope":"WRITE"}', '{"name":"fz","scope":"read "}'];
    for (const b of [...common, ...messages]) await send({ name: `messages body ${b.slice(0, 40)}`, method: 'POST', target: '/v1/messages', body: b, headers: [['Content-Type', 'application/json']] });
    for (const b of [...common.filter((x) => x !== '{"a":1}'.repeat(3) && x !== ''), ...tokens]) await send({ name: `tokens body ${b.slice(0, 40)}`, method: 'POST', target: '/v1/tokens', body: b, headers: [['Content-Type', 'application/json']] });
    // Wrong content types with bodies that would be refused anyway.
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '\u00ff']) {
      await send({ name: `messages content-type ${ct}`, method: 'POST', target: '/v1/messages', body: 'topic=fz&body=x', headers: [['Content-Type', ct]] });
      await send({ name: `tokens content-type ${ct}`, method: 'POST', target: '/v1/tokens', body: 'name=fz&scope=admin', headers: [['Content-Type', ct]] });
    }
    // Bodies on routes that take none.
    for (const r of routes.filter((x) => x.method === 'DELETE' || (x.method === 'POST' && x.path.startsWith('/v1/versions')))) {
      await send({ name: 'unexpected body', method: r.method, target: r.path.replace('{path}', 'fz-missing/b.bin').replace('{id}', 'no-such-id'), body: deep(10_000), headers: [['Content-Type', 'application/json']] });
    }
    expectNoProblems();
  });

  it(`${RANDOM_CASES} random combinations (route, mutated path, query, headers, body): never 5xx`, async () => {
    const mutate = (s: string): string => {
      const ops = rng.int(4);
      let out = s;
      for (let i = 0; i <= ops; i++) {
        const at = rng.int(out.length + 1);
        const what = rng.int(5);
        if (what === 0) out = out.slice(0, at) + '%' + rng.int(256).toString(16).padStart(2, '0') + out.slice(at);
        else if (what === 1) out = out.slice(0, at) + rng.pick(['/', '..', '.', '%2e', '%2f', '\\', '%', '//', '%00', ';']) + out.slice(at);
        else if (what === 2) out = out.slice(0, at) + out.slice(at + 1 + rng.int(3));
        else if (what === 3) out = out.slice(0, at) + rng.word(6) + out.slice(at);
        else out = out.slice(0, at) + String.fromCharCode(0x21 + rng.int(94)) + out.slice(at);
      }
      return out.replace(/[#?]/g, '%23');
    };
    const keys = ['version', 'limit', 'after', 'prefix', 'since', 'topic', 'all', 'x'];
    const methods = ['GET', 'HEAD', 'DELETE', 'POST', 'PATCH', 'OPTIONS'];
    for (let i = 0; i < RANDOM_CASES; i++) {
      const r = rng.pick(routes);
      // Side-effect-only routes and uploads: only with a method other than theirs (uploads are fuzzed above).
      let method = rng.bool(0.7) ? r.method : rng.pick(methods);
      if (method === 'PUT' || (method === 'POST' && (r.path === '/v1/keys/rotate' || r.path === '/v1/recover' || r.path === '/v1/tokens' || r.path === '/v1/messages'))) method = 'OPTIONS';
      const seg = r.hasPathParam ? `fz-r${i}/${mutate(rng.word(10))}` : '';
      let target = mutate(r.path).replace('{path}', seg).replace('{id}', rng.word(8));
      if (!target.startsWith('/')) target = '/' + target;
      if (rng.bool(0.5)) target += '?' + Array.from({ length: 1 + rng.int(3) }, () => `${rng.pick(keys)}=${mutate(rng.word(5))}`).join('&');
      const headers: [string, string][] = [];
      if (rng.bool(0.3)) headers.push(['Range', `bytes=${mutate(String(rng.int(100)))}-${mutate(String(rng.int(100)))}`]);
      if (rng.bool(0.2)) headers.push(['If-None-Match', `"${rng.word(20)}"`]);
      if (rng.bool(0.2)) headers.push(['Content-Type', rng.pick(['application/json', 'text/plain', 'application/octet-stream', rng.word(10)])]);
      const body = method === 'POST' || method === 'PATCH' || rng.bool(0.1) ? rng.pick(['{', '[]', '{"version":"x"}', rng.bytes(rng.int(300)).toString('latin1')]) : undefined;
      const isRead = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
      await send({ name: `random #${i}`, method, target, headers, body: body === undefined ? undefined : Buffer.from(body, 'latin1'), maySucceed: isRead, protocol: /[^\x21-\x7e]/.test(target) || target.length > 8000 });
    }
    expectNoProblems();
  });

  it('afterwards: every process alive, /readyz 200, and nothing changed (listing, versions, tokens, messages, key, disks)', async () => {
    console.log(`HTTP fuzz: ${sent} requests sent (seed ${seed}); slowest: ${slow.length ? slow.slice(0, 5).join('; ') : 'none over 1 s'}`);
    for (const p of networkProcs(net)) expect([p.name, p.running]).toEqual([p.name, true]);
    const ready = await request(`${net.gatewayUrl}/readyz`, 'GET');
    expect(ready.status).toBe(200);
    // Uploads broken off are cleaned up asynchronously (their node call cancelled): poll briefly.
    let after: Record<string, unknown> = {};
    try {
      await eventually(async () => JSON.stringify((after = await state())) === JSON.stringify(before), 15_000, 'the state to settle');
    } catch {
      /* compared below, with the difference shown */
    }
    expect(after).toEqual(before);
    const get = await request(`${net.gatewayUrl}/v1/files/${KNOWN}`, 'GET');
    expect([get.status, `"${get.sha256}"`]).toEqual([200, etag]);
  });
});
