import * as http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { TokenStore } from './auth/token-store';
import { startGateway, type RunningGateway } from './gateway';
import { NodeClient } from './node-client';
import { BROKEN_DOWNLOAD_SIZE, eventually, FakeNode, json, request, seeded } from './testing/fake-node';
import { RecoveryPhase } from '@distri-vault/shared/generated/vault/node/v1/node';

const MiB = 1024 * 1024;
const log = pino({ level: 'silent' });
const tokenDirs: string[] = [];
afterAll(() => tokenDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A token store in a fresh temp dir, and its first (read-write) token. */
async function openTokens(): Promise<{ tokens: TokenStore; admin: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-tokens-'));
  tokenDirs.push(dir);
  const { store, created } = await TokenStore.open(dir);
  return { tokens: store, admin: created!.token, dir };
}

/** Splits a buffer into pieces of odd sizes, as a client's writes would arrive. */
function* pieces(data: Buffer, size = 100_003): Iterable<Buffer> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size);
}

describe('gateway over a fake node', () => {
  let fake: FakeNode;
  let node: NodeClient;
  let gw: RunningGateway;
  let admin: string;
  const req = (method: string, path: string, opts: Parameters<typeof request>[3] = {}) =>
    request(gw.port, method, path, { ...opts, headers: { authorization: `Bearer ${admin}`, ...opts.headers } });

  beforeAll(async () => {
    fake = await new FakeNode().start();
    node = new NodeClient({}, { address: fake.address });
    const t = await openTokens();
    admin = t.admin;
    gw = await startGateway({ node, log, tokens: t.tokens }, { host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await gw.close();
    node.close();
    await fake.stop();
  });

  describe('upload and download', () => {
    it.each([
      ['0 B', 0],
      ['1 B', 1],
      ['1 MiB - 1', MiB - 1],
      ['1 MiB', MiB],
      ['1 MiB + 1', MiB + 1],
      ['40 MiB', 40 * MiB],
    ])('round-trips %s byte for byte in frames of at most 1 MiB', async (_name, size) => {
      const data = seeded(size, size + 17);
      const path = `round/trip-${size}.bin`;
      const put = await req('PUT', `/v1/files/${path}`, { body: pieces(data), headers: { 'content-length': size } });
      expect(put.status).toBe(201);
      const sha256 = createHash('sha256').update(data).digest('hex');
      expect(json(put)).toEqual({ path, version: 1, size, sha256, updated: new Date(1_700_000_000_000).toISOString(), chunks: Math.ceil(size / MiB) });

      const rec = fake.uploads.find((u) => u.path === path)!;
      expect(rec.size).toBe(size);
      expect(rec.frames.every((f) => f > 0 && f <= MiB)).toBe(true);
      // Coalesced: every frame but the last is full.
      expect(rec.frames.slice(0, -1).every((f) => f === MiB)).toBe(true);
      expect(rec.frames.reduce((a, b) => a + b, 0)).toBe(size);
      expect(fake.latest(path)!.data.equals(data)).toBe(true);

      const get = await req('GET', `/v1/files/${path}`);
      expect(get.status).toBe(200);
      expect(get.body.length).toBe(size);
      expect(get.body.equals(data)).toBe(true);
    }, 60_000);

    it('sends an upload without Content-Length with no size in the header', async () => {
      const data = seeded(3 * MiB + 5, 3);
      const put = await req('PUT', '/v1/files/chunked.bin', { body: pieces(data, 65_537), headers: { 'transfer-encoding': 'chunked' } });
      expect(put.status).toBe(201);
      const rec = fake.uploads.find((u) => u.path === 'chunked.bin')!;
      expect(rec.size).toBeUndefined();
      expect(rec.frames).toEqual([MiB, MiB, MiB, 5]);
      expect(fake.latest('chunked.bin')!.data.equals(data)).toBe(true);
    });

    it('decodes percent-escaped segments and sets the download headers', async () => {
      const data = seeded(1000, 5);
      const put = await req('PUT', '/v1/files/dir%20one/caf%C3%A9.txt', { body: data });
      expect(put.status).toBe(201);
      expect(json(put).path).toBe('dir one/café.txt');
      const second = seeded(2000, 6);
      expect((await req('PUT', '/v1/files/dir%20one/caf%C3%A9.txt', { body: second })).status).toBe(201);

      const get = await req('GET', '/v1/files/dir%20one/caf%C3%A9.txt');
      expect(get.status).toBe(200);
      expect(get.headers['content-type']).toBe('application/octet-stream');
      expect(get.headers['content-length']).toBe('2000');
      expect(get.headers['etag']).toBe(`"${createHash('sha256').update(second).digest('hex')}"`);
      expect(get.headers['x-vault-version']).toBe('2');
      expect(get.body.equals(second)).toBe(true);

      const v1 = await req('GET', '/v1/files/dir%20one/caf%C3%A9.txt?version=1');
      expect(v1.headers['x-vault-version']).toBe('1');
      expect(v1.body.equals(data)).toBe(true);
    });

    it('echoes X-Request-Id, or makes one', async () => {
      const echoed = await req('GET', '/healthz', { headers: { 'x-request-id': 'abc-123' } });
      expect(echoed.headers['x-request-id']).toBe('abc-123');
      const made = await req('GET', '/healthz');
      expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  describe('bearer tokens', () => {
    it('answers 401 with no token, a malformed one or an unknown one; health needs none', async () => {
      for (const authorization of [undefined, 'Basic abc', `Bearer dvt_000000000000_${'a'.repeat(43)}`, `Bearer ${admin}x`]) {
        const r = await request(gw.port, 'GET', '/v1/files', { headers: authorization ? { authorization } : {} });
        expect(r.status).toBe(401);
        expect(json(r).error.code).toBe('unauthenticated');
        expect(r.headers['www-authenticate']).toMatch(/^Bearer /);
      }
      expect((await request(gw.port, 'PUT', '/v1/files/no-token.txt', { body: Buffer.from('x') })).status).toBe(401);
      expect(fake.uploads.some((u) => u.path === 'no-token.txt')).toBe(false);
      expect((await request(gw.port, 'GET', '/healthz')).status).toBe(200);
      expect((await request(gw.port, 'GET', '/readyz')).status).toBe(200);
    });

    it('creates a read-only token that reads but gets 403 on writes and on token routes; revoking it gives 401', async () => {
      const created = await req('POST', '/v1/tokens', { body: Buffer.from(JSON.stringify({ name: 'ci reader', scope: 'read' })) });
      expect(created.status).toBe(201);
      const c = json(created);
      expect(c).toMatchObject({ name: 'ci reader', scope: 'read' });
      const ro = { authorization: `Bearer ${c.token}` };
      await req('PUT', '/v1/files/ro/seen.txt', { body: Buffer.from('hello') });
      expect((await request(gw.port, 'GET', '/v1/files/ro/seen.txt', { headers: ro })).body.toString()).toBe('hello');
      expect((await request(gw.port, 'GET', '/v1/files?prefix=ro/', { headers: ro })).status).toBe(200);
      for (const [method, path] of [['PUT', '/v1/files/ro/x.txt'], ['DELETE', '/v1/files/ro/seen.txt'], ['POST', '/v1/recover'], ['GET', '/v1/tokens'], ['POST', '/v1/tokens']]) {
        const r = await request(gw.port, method!, path!, { headers: ro, body: method === 'PUT' ? Buffer.from('x') : undefined });
        expect([method, path, r.status, json(r).error.code]).toEqual([method, path, 403, 'permission_denied']);
      }
      expect(fake.uploads.some((u) => u.path === 'ro/x.txt')).toBe(false);
      expect(fake.latest('ro/seen.txt')).toBeDefined();

      const listed = json(await req('GET', '/v1/tokens')).tokens;
      expect(listed.map((t: { id: string }) => t.id)).toContain(c.id);
      expect(JSON.stringify(listed)).not.toContain(c.token);
      expect((await req('DELETE', `/v1/tokens/${c.id}`)).status).toBe(204);
      expect((await request(gw.port, 'GET', '/v1/files', { headers: ro })).status).toBe(401);
      expect((await req('DELETE', `/v1/tokens/${c.id}`)).status).toBe(404);
    });

    it('refuses bad token requests with 400', async () => {
      expect((await req('POST', '/v1/tokens', { body: Buffer.from('{"scope":"admin"}') })).status).toBe(400);
      expect((await req('POST', '/v1/tokens', { body: Buffer.from('not json') })).status).toBe(400);
      expect((await req('POST', '/v1/tokens', { body: Buffer.from('{"name":"a/b"}') })).status).toBe(400);
      expect((await req('POST', '/v1/tokens', { body: Buffer.alloc(5000, 32) })).status).toBe(400);
    });
  });

  describe('HEAD, ranges and ETags', () => {
    const data = seeded(3 * MiB + 100, 99);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const etag = `"${sha256}"`;
    // Larger than the 16 MiB HTTP/2 window, so the node is still sending when the gateway cancels.
    const big = seeded(30 * MiB, 98);
    const bigTag = `"${createHash('sha256').update(big).digest('hex')}"`;
    beforeAll(async () => {
      expect((await req('PUT', '/v1/files/range/file.bin', { body: data })).status).toBe(201);
      expect((await req('PUT', '/v1/files/range/big.bin', { body: big })).status).toBe(201);
      expect((await req('PUT', '/v1/files/range/empty.bin', { body: Buffer.alloc(0) })).status).toBe(201);
    }, 30_000);

    const count = (rpc: string) => fake.calls.filter((c) => c === rpc).length;

    it('answers HEAD with the headers of GET, no body, from a stat: no download is started', async () => {
      const downloads = count('DownloadFile');
      const stats = count('StatFile');
      const r = await req('HEAD', '/v1/files/range/file.bin');
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(0);
      expect(r.headers).toMatchObject({ 'content-length': String(data.length), etag, 'accept-ranges': 'bytes', 'x-vault-version': '1' });
      expect(r.headers['last-modified']).toBe(new Date(1_700_000_000_000).toUTCString());
      expect((await req('HEAD', '/v1/files/range/big.bin')).headers['content-length']).toBe(String(big.length));
      expect((await req('HEAD', '/v1/files/range/none.bin')).status).toBe(404);
      // A version, a range (206 head with Content-Range), a range past the end (416).
      const ranged = await req('HEAD', '/v1/files/range/file.bin?version=1', { headers: { range: 'bytes=10-19' } });
      expect([ranged.status, ranged.headers['content-range'], ranged.headers['content-length'], ranged.body.length]).toEqual([206, `bytes 10-19/${data.length}`, '10', 0]);
      expect((await req('HEAD', '/v1/files/range/file.bin', { headers: { range: `bytes=${data.length}-` } })).status).toBe(416);
      expect((await req('HEAD', '/v1/files/range/file.bin?version=9')).status).toBe(404);
      expect([count('DownloadFile'), count('StatFile')]).toEqual([downloads, stats + 6]);
    });

    it.each([
      ['bytes=0-0', 0, 0],
      ['bytes=262143-262145', 262143, 262145],
      ['bytes=1048570-2097160', 1048570, 2097160],
      ['bytes=3145700-', 3145700, 3 * MiB + 99],
      ['bytes=-10', 3 * MiB + 90, 3 * MiB + 99],
      ['bytes=100-99999999', 100, 3 * MiB + 99],
    ])('serves %s as 206 with exactly those bytes', async (range, start, end) => {
      const r = await req('GET', '/v1/files/range/file.bin', { headers: { range } });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${data.length}`);
      expect(r.headers['content-length']).toBe(String(end - start + 1));
      expect(r.body.equals(data.subarray(start, end + 1))).toBe(true);
      // The node is asked to start at the range's first byte (for `bytes=-n` found with a StatFile first).
      expect(fake.offsets.at(-1)).toBe(start);
    });

    it('answers 416 with the size for a range past the end, and ignores ranges it does not serve', async () => {
      for (const [path, range, size] of [['range/file.bin', `bytes=${data.length}-`, data.length], ['range/empty.bin', 'bytes=0-', 0]] as const) {
        const r = await req('GET', `/v1/files/${path}`, { headers: { range } });
        expect(r.status).toBe(416);
        expect(r.headers['content-range']).toBe(`bytes */${size}`);
        expect(json(r).error.code).toBe('invalid_argument');
      }
      for (const range of ['bytes=0-1,5-6', 'lines=1-2', 'bytes=9-3']) {
        const r = await req('GET', '/v1/files/range/file.bin', { headers: { range } });
        expect([range, r.status, r.body.length]).toEqual([range, 200, data.length]);
      }
    });

    it('honours If-Range only with the current ETag', async () => {
      const same = await req('GET', '/v1/files/range/file.bin', { headers: { range: 'bytes=0-9', 'if-range': etag } });
      expect([same.status, same.body.length]).toEqual([206, 10]);
      const changed = await req('GET', '/v1/files/range/file.bin', { headers: { range: 'bytes=0-9', 'if-range': '"0000"' } });
      expect([changed.status, changed.body.length]).toEqual([200, data.length]);
    });

    it('answers 304 with no body to If-None-Match with the current ETag, 200 otherwise', async () => {
      for (const inm of [etag, `"zzz", ${etag}`, `W/${etag}`, '*']) {
        const r = await req('GET', '/v1/files/range/file.bin', { headers: { 'if-none-match': inm } });
        expect([inm, r.status, r.body.length, r.headers['etag']]).toEqual([inm, 304, 0, etag]);
      }
      const downloads = count('DownloadFile');
      expect((await req('GET', '/v1/files/range/big.bin', { headers: { 'if-none-match': bigTag } })).status).toBe(304);
      expect((await req('HEAD', '/v1/files/range/big.bin', { headers: { 'if-none-match': bigTag } })).status).toBe(304);
      // Answered from a stat: no download was started for any 304.
      expect(count('DownloadFile')).toBe(downloads);
      const stale = await req('GET', '/v1/files/range/file.bin', { headers: { 'if-none-match': '"0000"' } });
      expect([stale.status, stale.body.equals(data), stale.headers['etag']]).toEqual([200, true, etag]);
      expect(count('DownloadFile')).toBe(downloads + 1);
    });
  });

  describe('versions', () => {
    it('lists, reads, restores and deletes versions', async () => {
      for (const body of ['first', 'second', 'third']) expect((await req('PUT', '/v1/files/ver/a%20b.txt', { body: Buffer.from(body) })).status).toBe(201);
      const listed = await req('GET', '/v1/versions/ver/a%20b.txt');
      expect(listed.status).toBe(200);
      expect(json(listed).versions.map((v: { path: string; version: number }) => [v.path, v.version])).toEqual([['ver/a b.txt', 1], ['ver/a b.txt', 2], ['ver/a b.txt', 3]]);
      expect((await req('GET', '/v1/files/ver/a%20b.txt?version=1')).body.toString()).toBe('first');

      const restored = await req('POST', '/v1/versions/ver/a%20b.txt?version=1');
      expect(restored.status).toBe(201);
      expect(json(restored)).toMatchObject({ path: 'ver/a b.txt', version: 4, size: 5 });
      expect((await req('GET', '/v1/files/ver/a%20b.txt')).body.toString()).toBe('first');

      const gone = await req('DELETE', '/v1/versions/ver/a%20b.txt?version=4');
      expect([gone.status, json(gone)]).toEqual([200, { removed: 1 }]);
      expect((await req('GET', '/v1/files/ver/a%20b.txt')).body.toString()).toBe('third');

      expect((await req('DELETE', '/v1/files/ver/a%20b.txt')).status).toBe(204);
      const withTombstone = json(await req('GET', '/v1/versions/ver/a%20b.txt')).versions;
      expect(withTombstone.at(-1)).toMatchObject({ version: 5, deleted: true });
      expect(withTombstone[0].deleted).toBeUndefined();

      const all = await req('DELETE', '/v1/versions/ver/a%20b.txt?all=true');
      expect([all.status, json(all)]).toEqual([200, { removed: 4 }]);
      expect((await req('GET', '/v1/versions/ver/a%20b.txt')).status).toBe(404);
    });

    it('answers 400 for a missing or bad version, 404 for unknown ones, 403 for read-only tokens', async () => {
      await req('PUT', '/v1/files/ver/b.txt', { body: Buffer.from('x') });
      const before = fake.calls.length;
      for (const [method, q] of [['POST', ''], ['POST', '?version=0'], ['DELETE', ''], ['DELETE', '?version=1&all=true'], ['DELETE', '?all=yes']]) {
        const r = await req(method!, `/v1/versions/ver/b.txt${q}`);
        expect([method, q, r.status, json(r).error.code]).toEqual([method, q, 400, 'invalid_argument']);
      }
      expect((await req('GET', '/v1/versions/ver/%2e%2e')).status).toBe(400);
      expect(fake.calls.length).toBe(before);
      expect((await req('POST', '/v1/versions/ver/b.txt?version=7')).status).toBe(404);
      expect((await req('DELETE', '/v1/versions/ver/b.txt?version=7')).status).toBe(404);
      expect((await req('GET', '/v1/versions/ver/none.txt')).status).toBe(404);
      const ro = json(await req('POST', '/v1/tokens', { body: Buffer.from('{"scope":"read"}') })).token;
      const h = { authorization: `Bearer ${ro}` };
      expect((await request(gw.port, 'GET', '/v1/versions/ver/b.txt', { headers: h })).status).toBe(200);
      expect((await request(gw.port, 'POST', '/v1/versions/ver/b.txt?version=1', { headers: h })).status).toBe(403);
      expect((await request(gw.port, 'DELETE', '/v1/versions/ver/b.txt?version=1', { headers: h })).status).toBe(403);
    });
  });

  describe('listing pages', () => {
    it('pages through a prefix with limit and after, and refuses bad values', async () => {
      for (let i = 0; i < 7; i++) await req('PUT', `/v1/files/page/f${i}.txt`, { body: Buffer.from(String(i)) });
      await req('PUT', '/v1/files/pagez.txt', { body: Buffer.from('outside') });
      const seen: string[] = [];
      let after: string | null = '';
      let pages = 0;
      while (after !== null) {
        const r = await req('GET', `/v1/files?prefix=page%2F&limit=3${after ? `&after=${encodeURIComponent(after)}` : ''}`);
        expect(r.status).toBe(200);
        const body = json(r);
        seen.push(...body.files.map((f: { path: string }) => f.path));
        after = body.next;
        pages++;
      }
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `page/f${i}.txt`));
      expect(pages).toBe(3);
      expect(json(await req('GET', '/v1/files?prefix=page/&limit=7')).next).toBeNull();
      for (const q of ['limit=0', 'limit=-1', 'limit=10001', 'limit=x', 'after=a&after=b']) {
        const r = await req('GET', `/v1/files?${q}`);
        expect([q, r.status]).toEqual([q, 400]);
      }
    });
  });

  describe('OpenAPI', () => {
    it('serves the generated document at /docs-json and interactive docs at /docs, without a token', async () => {
      const doc = await request(gw.port, 'GET', '/docs-json');
      expect(doc.status).toBe(200);
      const d = json(doc);
      expect(d.openapi).toMatch(/^3\./);
      expect(Object.keys(d.paths)).toEqual(expect.arrayContaining(['/v1/files', '/v1/files/{path}', '/v1/versions/{path}', '/v1/nodes', '/v1/node', '/v1/recover', '/v1/messages', '/v1/tokens', '/v1/tokens/{id}', '/metrics', '/healthz', '/readyz']));
      expect(Object.keys(d.paths['/v1/files/{path}']).sort()).toEqual(['delete', 'get', 'put']);
      expect(d.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
      const ui = await request(gw.port, 'GET', '/docs');
      expect(ui.status).toBe(200);
      expect(ui.body.toString()).toContain('swagger-ui');
    });
  });

  describe('other routes', () => {
    it('lists files, with a prefix', async () => {
      await req('PUT', '/v1/files/list/a', { body: Buffer.from('a') });
      await req('PUT', '/v1/files/list/b', { body: Buffer.from('bb') });
      await req('PUT', '/v1/files/other', { body: Buffer.from('c') });
      const all = await req('GET', '/v1/files');
      expect(all.status).toBe(200);
      expect(json(all).files.map((f: { path: string }) => f.path)).toEqual(expect.arrayContaining(['list/a', 'list/b', 'other']));
      const some = await req('GET', '/v1/files?prefix=list%2F');
      expect(json(some)).toEqual({
        files: [
          { path: 'list/a', version: 1, size: 1, sha256: createHash('sha256').update('a').digest('hex'), updated: '2023-11-14T22:13:20.000Z', chunks: 1 },
          { path: 'list/b', version: 1, size: 2, sha256: createHash('sha256').update('bb').digest('hex'), updated: '2023-11-14T22:13:20.000Z', chunks: 1 },
        ],
        next: null,
      });
    });

    it('deletes: 204, then 404 for the file and for a second delete', async () => {
      await req('PUT', '/v1/files/doomed.txt', { body: Buffer.from('x') });
      const del = await req('DELETE', '/v1/files/doomed.txt');
      expect(del.status).toBe(204);
      expect(del.body.length).toBe(0);
      const get = await req('GET', '/v1/files/doomed.txt');
      expect(get.status).toBe(404);
      expect(json(get)).toEqual({ error: { code: 'not_found', message: 'no such file' } });
      const again = await req('DELETE', '/v1/files/doomed.txt');
      expect(again.status).toBe(404);
      expect(json(again).error.code).toBe('not_found');
    });

    it('lists nodes with their states, last-seen and since', async () => {
      const r = await req('GET', '/v1/nodes');
      expect(r.status).toBe(200);
      const seen = '2023-11-14T22:13:20.000Z';
      expect(json(r)).toEqual({
        nodes: [
          { serverId: 'a'.repeat(32), address: '127.0.0.1:7000', state: 'self', lastSeen: null, since: '2020-09-13T12:26:40.000Z' },
          { serverId: 'b'.repeat(32), address: '127.0.0.1:7001', state: 'connected', lastSeen: seen, since: '2023-07-22T04:26:40.000Z' },
          { serverId: 'c'.repeat(32), address: '127.0.0.1:7003', state: 'suspect', lastSeen: seen, since: '2023-11-14T22:13:26.000Z' },
          { serverId: 'd'.repeat(32), address: '127.0.0.1:7004', state: 'down', lastSeen: seen, since: '2023-11-14T22:13:35.000Z' },
          { serverId: 'e'.repeat(32), address: '127.0.0.1:7005', state: 'left', lastSeen: seen, since: seen },
          { serverId: '', address: '127.0.0.1:7002', state: 'connecting', lastSeen: null, since: null },
        ],
      });
    });

    it('sends messages (to one, broadcast) and lists them, with the error statuses', async () => {
      const one = await req('POST', '/v1/messages', { body: Buffer.from(JSON.stringify({ to: 'b'.repeat(32), topic: 'chat/one', body: 'hello b' })) });
      expect([one.status, json(one).recipients]).toEqual([201, ['b'.repeat(32)]]);
      const all = await req('POST', '/v1/messages', { body: Buffer.from(JSON.stringify({ topic: 'chat/all', bodyBase64: Buffer.from([0, 255]).toString('base64') })) });
      expect([all.status, json(all).recipients]).toEqual([201, ['b'.repeat(32), 'c'.repeat(32)]]);
      await req('POST', '/v1/messages', { body: Buffer.from(JSON.stringify({ topic: 'chat/third', body: '3' })) });
      // Pages (of two, in the fake) continued with ?after=.
      const first = json(await req('GET', '/v1/messages'));
      expect(first.messages.map((m: { topic: string; to: string | null; body: string }) => [m.topic, m.to, m.body])).toEqual([
        ['chat/one', 'b'.repeat(32), 'hello b'],
        ['chat/all', null, '\u0000\ufffd'],
      ]);
      expect(first.next).toBe(first.messages[1].id);
      const second = json(await req('GET', `/v1/messages?after=${first.next}`));
      expect([second.messages.map((m: { topic: string }) => m.topic), second.next]).toEqual([['chat/third'], null]);
      const bin = json(await req('GET', '/v1/messages?topic=chat/all')).messages;
      expect(bin.map((m: { bodyBase64: string; to: null }) => [m.bodyBase64, m.to])).toEqual([['AP8=', null]]);
      const since = json(await req('GET', `/v1/messages?since=${encodeURIComponent(bin[0].received)}`)).messages;
      expect(since.map((m: { topic: string }) => m.topic)).toEqual(['chat/all', 'chat/third']);
      const cases: [unknown, number, string][] = [
        [{ to: 'z'.repeat(32), topic: 't', body: 'x' }, 404, 'not_found'],
        [{ to: 'd'.repeat(32), topic: 't', body: 'x' }, 503, 'unavailable'],
        [{ to: 'not-an-id', topic: 't', body: 'x' }, 400, 'invalid_argument'],
        [{ topic: 'bad topic!', body: 'x' }, 400, 'invalid_argument'],
        [{ body: 'no topic' }, 400, 'invalid_argument'],
        [{ topic: 't', body: 'x'.repeat(65537) }, 400, 'invalid_argument'],
        [{ topic: 't', body: 1 }, 400, 'invalid_argument'],
        [[1, 2], 400, 'invalid_argument'],
      ];
      for (const [body, status, code] of cases) {
        const r = await req('POST', '/v1/messages', { body: Buffer.from(JSON.stringify(body)) });
        expect([body, r.status, json(r).error.code]).toEqual([body, status, code]);
      }
      for (const q of ['since=yesterday', 'since=a&since=b', 'topic=a&topic=b', 'after=../x']) expect([q, (await req('GET', `/v1/messages?${q}`)).status]).toEqual([q, 400]);
    });

    it('recovers with ?wait=true and reports the summary (int64 above 2^32 intact)', async () => {
      const r = await req('POST', '/v1/recover?wait=true');
      expect(r.status).toBe(200);
      expect(json(r)).toEqual({ peers: 2, chunks: 2 ** 33, manifests: 4, bytes: 5 * 2 ** 40, files: 3, durationMs: 1234 });
      expect((await req('POST', '/v1/recover?wait=maybe')).status).toBe(400);
    });

    it('shows recovery status (idle first), starts a recovery with 202, and joins the running one', async () => {
      const idle = await req('GET', '/v1/recover');
      expect([idle.status, json(idle).phase, json(idle).run, json(idle).started]).toEqual([200, 'idle', 0, null]);
      const start = await req('POST', '/v1/recover');
      expect(start.status).toBe(202);
      expect(json(start)).toMatchObject({ phase: 'syncing', run: 1, trigger: 'request', started: '2023-11-14T22:13:20.000Z', peersTotal: 2, joined: false });
      const again = await req('POST', '/v1/recover');
      expect([again.status, json(again).run, json(again).joined]).toEqual([202, 1, true]);
      fake.recovery = { ...fake.recovery, phase: RecoveryPhase.RECOVERY_PHASE_DONE, peersDone: 2, chunks: 7, bytes: 3 * 2 ** 33, bytesPerSecond: 1.5e8, files: 3, errorMessages: ['x'] };
      const done = await req('GET', '/v1/recover');
      expect(json(done)).toMatchObject({ phase: 'done', peersDone: 2, peersTotal: 2, chunks: 7, bytes: 3 * 2 ** 33, bytesPerSecond: 1.5e8, files: 3, errorMessages: ['x'] });
    });

    it('shows per-folder replication health from the last repair pass, and none before it', async () => {
      const before = await req('GET', '/v1/replication');
      expect(json(before)).toEqual({
        serverId: 'a'.repeat(32),
        replicas: 3,
        pass: null,
        totals: { folders: 0, objects: 0, underReplicated: 0, soleCopy: 0 },
        folders: [],
        backlog: { objects: 3, bytes: 3 * MiB },
      });
      fake.lastRepair = {
        finishedUnixMs: 1_700_000_000_000, folders: 2, objects: 2 ** 33 + 12, pushed: 0, pushedBytes: 0, deleted: 0, failed: 0, underReplicated: 5, durationMs: 42,
        foldersHealth: [
          { folder: 'a'.repeat(32), objects: 2 ** 33, chunks: 2 ** 33 - 1, underReplicated: 3, chunksUnderReplicated: 2, soleCopy: 1 },
          { folder: 'c'.repeat(32), objects: 12, chunks: 10, underReplicated: 2, chunksUnderReplicated: 2, soleCopy: 0 },
        ],
      };
      try {
        const r = await req('GET', '/v1/replication');
        expect(r.status).toBe(200);
        expect(json(r)).toEqual({
          serverId: 'a'.repeat(32),
          replicas: 3,
          pass: { finished: '2023-11-14T22:13:20.000Z', durationMs: 42 },
          totals: { folders: 2, objects: 2 ** 33 + 12, underReplicated: 5, soleCopy: 1 },
          folders: [
            { folder: 'a'.repeat(32), own: true, objects: 2 ** 33, chunks: 2 ** 33 - 1, underReplicated: 3, chunksUnderReplicated: 2, soleCopy: 1 },
            { folder: 'c'.repeat(32), own: false, objects: 12, chunks: 10, underReplicated: 2, chunksUnderReplicated: 2, soleCopy: 0 },
          ],
          backlog: { objects: 3, bytes: 3 * MiB },
        });
      } finally {
        fake.lastRepair = undefined;
      }
    });

    it('shows node info, health and readiness', async () => {
      const info = await req('GET', '/v1/node');
      expect(json(info)).toEqual({
        serverId: 'a'.repeat(32),
        peerAddress: '127.0.0.1:7000',
        protocolVersion: 1,
        chunkSize: MiB,
        replicas: 3,
        writeQuorum: 2,
        backlog: { objects: 3, bytes: 3 * MiB, sent: 2 ** 33, failed: 1, peers: [{ serverId: 'b'.repeat(32), objects: 3, bytes: 3 * MiB }] },
        lastRepair: null,
        garbage: { records: 2, tombstones: 2 ** 33, deleted: 7 },
      });
      const h = await req('GET', '/healthz');
      expect(h.status).toBe(200);
      expect(json(h)).toEqual({ status: 'ok' });
      const ready = await req('GET', '/readyz');
      expect(ready.status).toBe(200);
    });
  });

  describe('errors', () => {
    const badPaths = [
      ['..', '/v1/files/..'],
      ['.. inside', '/v1/files/a/../b'],
      ['. segment', '/v1/files/a/./b'],
      ['%2e%2e', '/v1/files/%2e%2e/etc/passwd'],
      ['%2E%2E alone', '/v1/files/%2E%2E'],
      ['%00', '/v1/files/a%00b'],
      ['control char', '/v1/files/a%0Ab'],
      ['empty segment', '/v1/files/a//b'],
      ['leading slash', '/v1/files//etc'],
      ['trailing slash', '/v1/files/a/'],
      ['bad percent escape', '/v1/files/a%zzb'],
      ['truncated escape', '/v1/files/a%2'],
      ['invalid UTF-8', '/v1/files/%FF'],
      ['backslash', '/v1/files/a%5Cb'],
      ['encoded slash', '/v1/files/a%2Fb'],
      ['too long', `/v1/files/${'x'.repeat(1025)}`],
    ];
    it.each(badPaths)('rejects %s with 400 before reaching the node', async (_name, path) => {
      const before = fake.calls.length;
      for (const method of ['PUT', 'GET', 'DELETE']) {
        const r = await req(method, path, method === 'PUT' ? { body: Buffer.from('data') } : {});
        expect([method, r.status]).toEqual([method, 400]);
        expect(json(r).error.code).toBe('invalid_argument');
      }
      expect(fake.calls.length).toBe(before);
    });

    it('rejects a bad version query with 400', async () => {
      const before = fake.calls.length;
      for (const q of ['0', '-1', 'x', '1.5', '1&version=2']) {
        const r = await req('GET', `/v1/files/a?version=${q}`);
        expect([q, r.status]).toEqual([q, 400]);
      }
      expect(fake.calls.length).toBe(before);
    });

    it.each([
      ['not_found', 404],
      ['invalid_argument', 400],
      ['data_loss', 500],
      ['unavailable', 503],
    ])('maps %s from the node to %d with the JSON error shape', async (code, status) => {
      const path = `/v1/files/err/${code}/f`;
      for (const [method, opts] of [['GET', {}], ['PUT', { body: seeded(3 * MiB, 1) }], ['DELETE', {}]] as const) {
        const r = await req(method, path, opts);
        expect([method, r.status]).toEqual([method, status]);
        expect(r.headers['content-type']).toMatch(/^application\/json/);
        const body = json(r);
        expect(Object.keys(body)).toEqual(['error']);
        expect(body.error.code).toBe(code);
        expect(typeof body.error.message).toBe('string');
      }
      const list = await req('GET', `/v1/files?prefix=err/${code}/`);
      expect(list.status).toBe(status);
    });

    it('reads the rest of an upload the node refuses at once before answering: no reset, no stalled keep-alive client', async () => {
      // Answered before the body was read, the exchange ended with the body's bytes unread: a closing
      // connection was reset (the client still sending saw EPIPE or ECONNRESET, not the 503), a kept-alive
      // one stopped reading (the client's body never finished).
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (const size of [8 * MiB, 3 * MiB + 1]) {
          const outcome = await new Promise<{ status?: number; body?: string; sent?: boolean; error?: string }>((resolve) => {
            let sent = false;
            const r = http.request({ host: '127.0.0.1', port: gw.port, method: 'PUT', path: '/v1/files/err/unavailable/big', headers: { authorization: `Bearer ${admin}`, 'content-length': size }, agent }, (res) => {
              const parts: Buffer[] = [];
              res.on('data', (d: Buffer) => parts.push(d));
              res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString('utf8'), sent }));
            });
            r.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
            r.on('finish', () => (sent = true));
            const timer = setTimeout(() => {
              resolve({ error: `no answer within 20 s (body ${sent ? '' : 'not '}all sent)` });
              r.destroy();
            }, 20_000);
            r.on('close', () => clearTimeout(timer));
            r.end(Buffer.alloc(size, 1));
          });
          expect([size, outcome]).toEqual([size, { status: 503, body: expect.stringContaining('"unavailable"'), sent: true }]);
        }
        // The kept-alive connection still works.
        const ok = await new Promise<number | undefined>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: gw.port, path: '/healthz', agent }, (res) => res.resume().on('end', () => resolve(res.statusCode))).on('error', reject);
        });
        expect(ok).toBe(200);
      } finally {
        agent.destroy();
      }
    });

    it('answers unknown routes and methods with a 404 JSON error', async () => {
      for (const [method, path] of [['GET', '/nope'], ['GET', '/v1'], ['POST', '/v1/files/a'], ['PUT', '/v1/files']]) {
        const r = await req(method, path);
        expect([method, path, r.status]).toEqual([method, path, 404]);
        expect(json(r)).toEqual({ error: { code: 'not_found', message: 'no such route' } });
      }
    });

    it('cancels the node call when the client aborts mid-upload', async () => {
      const path = 'aborted/upload.bin';
      const client = http.request({ host: '127.0.0.1', port: gw.port, method: 'PUT', path: `/v1/files/${path}`, headers: { 'content-length': 10 * MiB, authorization: `Bearer ${admin}` }, agent: false });
      client.on('error', () => undefined);
      client.write(seeded(2 * MiB, 9));
      await eventually(() => (fake.uploads.find((u) => u.path === path)?.frames.length ?? 0) >= 1);
      client.destroy();
      await eventually(() => fake.uploads.find((u) => u.path === path)!.cancelled);
      const rec = fake.uploads.find((u) => u.path === path)!;
      expect(rec.stored).toBe(false);
      expect(fake.latest(path)).toBeUndefined();
    });

    it('cancels the node call when the client goes away mid-download', async () => {
      const data = seeded(30 * MiB, 77);
      expect((await req('PUT', '/v1/files/big/leave.bin', { body: data })).status).toBe(201);
      const before = fake.downloadsCancelled;
      await new Promise<void>((resolve, reject) => {
        const r = http.get({ host: '127.0.0.1', port: gw.port, path: '/v1/files/big/leave.bin', agent: false, headers: { authorization: `Bearer ${admin}` } }, (res) => {
          expect(res.statusCode).toBe(200);
          res.once('data', () => {
            r.destroy();
            resolve();
          });
        });
        r.on('error', (e) => (r.destroyed ? undefined : reject(e)));
      });
      await eventually(() => fake.downloadsCancelled > before);
    }, 30_000);

    it('breaks the response when the node fails after the download header', async () => {
      // Keep-alive: with it a response that merely ends short would leave the client waiting, not broken.
      const agent = new http.Agent({ keepAlive: true });
      const outcome = await new Promise<{ status: number; length: string | undefined; received: number; broken: boolean }>((resolve) => {
        const timer = setTimeout(() => resolve({ status: -1, length: undefined, received: -1, broken: false }), 5000);
        const r = http.get({ host: '127.0.0.1', port: gw.port, path: '/v1/files/err/after-header', agent, headers: { authorization: `Bearer ${admin}` } }, (res) => {
          let received = 0;
          res.on('data', (d: Buffer) => (received += d.length));
          const finish = (broken: boolean) => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], received, broken });
          };
          res.on('end', () => finish(false));
          res.on('error', () => finish(true));
          res.on('aborted', () => finish(true));
        });
        r.on('error', () => resolve({ status: 0, length: undefined, received: 0, broken: true }));
      });
      agent.destroy();
      expect(outcome.status).toBe(200);
      expect(outcome.length).toBe(String(BROKEN_DOWNLOAD_SIZE));
      expect(outcome.broken).toBe(true);
      expect(outcome.received).toBeLessThan(BROKEN_DOWNLOAD_SIZE);
    });
  });
});

describe('limits and metrics', () => {
  let fake: FakeNode;
  let node: NodeClient;
  let gw: RunningGateway;
  let auth: { authorization: string };
  const req = (method: string, path: string, opts: Parameters<typeof request>[3] = {}) => request(gw.port, method, path, { ...opts, headers: { ...auth, ...opts.headers } });

  beforeAll(async () => {
    fake = await new FakeNode().start();
    node = new NodeClient({}, { address: fake.address });
    const { tokens, admin } = await openTokens();
    auth = { authorization: `Bearer ${admin}` };
    gw = await startGateway({ node, log, tokens, limits: { maxConcurrent: 2, maxUploadBytes: MiB } }, { host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await gw.close();
    node.close();
    await fake.stop();
  });

  it('refuses an upload over the size limit with 413, up front or mid-body, writing nothing', async () => {
    expect((await req('PUT', '/v1/files/lim/ok.bin', { body: seeded(MiB, 1) })).status).toBe(201);
    const calls = fake.calls.length;
    const declared = await req('PUT', '/v1/files/lim/big.bin', { body: seeded(MiB + 1, 2) });
    expect([declared.status, json(declared).error.code]).toEqual([413, 'resource_exhausted']);
    expect(fake.calls.length).toBe(calls);
    const chunked = await req('PUT', '/v1/files/lim/chunked.bin', { body: [seeded(MiB, 3), seeded(10, 4)], headers: { 'transfer-encoding': 'chunked' } });
    expect([chunked.status, json(chunked).error.code]).toEqual([413, 'resource_exhausted']);
    await eventually(() => fake.uploads.some((u) => u.path === 'lim/chunked.bin' && u.cancelled));
    expect(fake.latest('lim/chunked.bin')).toBeUndefined();
  });

  it('answers 429 with Retry-After beyond the concurrency limit; health is exempt', async () => {
    // Two uploads that stay open (half their declared body sent) fill both slots.
    const held = [1, 2].map((i) => {
      const r = http.request({ host: '127.0.0.1', port: gw.port, method: 'PUT', path: `/v1/files/lim/held-${i}.bin`, headers: { ...auth, 'content-length': 1000 }, agent: false });
      r.on('error', () => undefined);
      r.write(Buffer.alloc(500));
      return r;
    });
    await eventually(() => fake.uploads.filter((u) => u.path.startsWith('lim/held-')).length === 2);
    const busy = await req('GET', '/v1/files');
    expect([busy.status, json(busy).error.code, busy.headers['retry-after']]).toEqual([429, 'resource_exhausted', '1']);
    expect((await request(gw.port, 'GET', '/healthz')).status).toBe(200);
    held.forEach((r) => r.destroy());
    await eventually(() => fake.uploads.filter((u) => u.path.startsWith('lim/held-') && u.cancelled).length === 2);
    let after = 0;
    for (let i = 0; i < 50 && after !== 200; i++) {
      after = (await req('GET', '/v1/files')).status;
      if (after !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(after).toBe(200);
  });

  it('serves Prometheus metrics to token holders only', async () => {
    expect((await request(gw.port, 'GET', '/metrics')).status).toBe(401);
    const m = await req('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toMatch(/^text\/plain/);
    const text = m.body.toString();
    expect(text).toMatch(/vault_gateway_requests_total\{method="PUT",route="[^"]+",status="201"\} 1/);
    expect(text).toMatch(/vault_gateway_requests_total\{method="PUT",route="[^"]+",status="413"\} 2/);
    expect(text).toContain(`vault_gateway_file_bytes_total{direction="in"} ${MiB}`);
    expect(text).toMatch(/vault_gateway_requests_refused_total\{reason="concurrency"\} 1/);
    expect(text).toMatch(/vault_gateway_requests_refused_total\{reason="size"\} 1/);
    expect(text).toContain('vault_gateway_request_duration_seconds_bucket{le="0.001"');
    expect(text).toContain('vault_gateway_process_resident_memory_bytes');
    expect(text).toMatch(/vault_gateway_requests_in_flight 1\n/);
    // The home node's replication figures, fetched on this scrape.
    expect(text).toContain('vault_node_up 1\n');
    expect(text).toContain(`vault_node_replication_backlog_objects{node="${'a'.repeat(32)}"} 3\n`);
    expect(text).toContain(`vault_node_replication_backlog_bytes{node="${'a'.repeat(32)}"} ${3 * MiB}\n`);
    expect(text).toContain(`vault_node_replication_backlog_peer_objects{node="${'a'.repeat(32)}",peer="${'b'.repeat(32)}"} 3\n`);
    expect(text).toContain(`vault_node_replication_backlog_peer_bytes{node="${'a'.repeat(32)}",peer="${'b'.repeat(32)}"} ${3 * MiB}\n`);
    expect(text).not.toContain('vault_node_under_replicated_objects{');
    expect(text).not.toContain('vault_node_last_repair_timestamp_seconds{');
  });

  it('refreshes the node gauges on every scrape, and clears them with vault_node_up 0 when the node is gone', async () => {
    fake.lastRepair = {
      finishedUnixMs: 1_700_000_000_000, folders: 1, objects: 9, pushed: 0, pushedBytes: 0, deleted: 0, failed: 0, underReplicated: 4, durationMs: 5,
      foldersHealth: [{ folder: 'a'.repeat(32), objects: 9, chunks: 8, underReplicated: 4, chunksUnderReplicated: 3, soleCopy: 2 }],
    };
    const text = (await req('GET', '/metrics')).body.toString();
    expect(text).toContain(`vault_node_under_replicated_objects{node="${'a'.repeat(32)}",folder="${'a'.repeat(32)}"} 4\n`);
    expect(text).toContain(`vault_node_sole_copy_objects{node="${'a'.repeat(32)}",folder="${'a'.repeat(32)}"} 2\n`);
    expect(text).toContain(`vault_node_folder_objects{node="${'a'.repeat(32)}",folder="${'a'.repeat(32)}"} 9\n`);
    expect(text).toContain(`vault_node_last_repair_timestamp_seconds{node="${'a'.repeat(32)}"} 1700000000\n`);
    fake.lastRepair = { ...fake.lastRepair, foldersHealth: [{ folder: 'a'.repeat(32), objects: 9, chunks: 8, underReplicated: 0, chunksUnderReplicated: 0, soleCopy: 0 }] };
    expect((await req('GET', '/metrics')).body.toString()).toContain(`vault_node_under_replicated_objects{node="${'a'.repeat(32)}",folder="${'a'.repeat(32)}"} 0\n`);

    await fake.stop();
    const started = Date.now();
    const down = await req('GET', '/metrics');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(down.status).toBe(200);
    const t = down.body.toString();
    expect(t).toContain('vault_node_up 0\n');
    expect(t).not.toMatch(/^vault_node_(replication|under|sole|folder|last)/m);
    expect(t).toContain('vault_gateway_requests_total');
  });
});

describe('readiness when the node is down', () => {
  it('answers /readyz 503 once the node stops, 200 while it runs, and /healthz 200 throughout', async () => {
    const fake = await new FakeNode().start();
    const node = new NodeClient({}, { address: fake.address });
    const { tokens, admin } = await openTokens();
    const gw = await startGateway({ node, log, tokens }, { host: '127.0.0.1', port: 0 });
    try {
      expect((await request(gw.port, 'GET', '/readyz')).status).toBe(200);
      await fake.stop();
      const started = Date.now();
      const down = await request(gw.port, 'GET', '/readyz');
      expect(Date.now() - started).toBeLessThan(3000);
      expect(down.status).toBe(503);
      expect(json(down).error.code).toBe('unavailable');
      const listed = await request(gw.port, 'GET', '/v1/files', { headers: { authorization: `Bearer ${admin}` } });
      expect(listed.status).toBe(503);
      // Transport details (addresses, socket errors) stay in the log.
      expect(json(listed)).toEqual({ error: { code: 'unavailable', message: 'home node unreachable' } });
      expect(listed.headers['etag']).toBeUndefined();
      expect((await request(gw.port, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await gw.close();
      node.close();
      await fake.stop();
    }
  });
});
