/**
 * The OpenAPI document (/docs-json) as a contract: every route documents a success answer with its schema
 * and its error statuses with the one error shape, and real answers of the gateway (over a fake node)
 * validate against the schemas the document gives for their route and status (ajv, OpenAPI 3.0 keywords).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import pino from 'pino';
import { TokenStore } from './auth/token-store';
import { startGateway, type RunningGateway } from './gateway';
import { NodeClient } from './node-client';
import { FakeNode, json, request, type HttpResult } from './testing/fake-node';

const log = pino({ level: 'silent' });
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head'];

interface Operation {
  responses: Record<string, { description: string; content?: Record<string, { schema: Record<string, unknown> }> }>;
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
  security?: unknown[];
}

describe('OpenAPI document', () => {
  let fake: FakeNode;
  let node: NodeClient;
  let gw: RunningGateway;
  let admin: string;
  let dir: string;
  let doc: { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };
  let ajv: Ajv;

  beforeAll(async () => {
    fake = await new FakeNode().start();
    node = new NodeClient({}, { address: fake.address });
    dir = mkdtempSync(join(tmpdir(), 'gw-openapi-'));
    const { store, created } = await TokenStore.open(dir);
    admin = created!.token;
    gw = await startGateway({ node, log, tokens: store }, { host: '127.0.0.1', port: 0 });
    doc = json(await request(gw.port, 'GET', '/docs-json'));
    ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    // The whole document as one schema, so `#/components/schemas/...` references resolve inside it.
    ajv.addSchema(doc, 'doc');
  });
  afterAll(async () => {
    await gw?.close();
    node?.close();
    await fake?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([m]) => METHODS.includes(m)).map(([method, op]) => ({ path, method, op })));

  it('documents, for every route, a success answer with a body schema and its error statuses with the error shape', () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThanOrEqual(20);
    for (const { path, method, op } of ops) {
      const where = `${method.toUpperCase()} ${path}`;
      const statuses = Object.keys(op.responses);
      const ok = statuses.filter((s) => /^2\d\d$/.test(s));
      expect([where, ok.length > 0]).toEqual([where, true]);
      for (const s of ok) {
        const r = op.responses[s]!;
        // 204 has no body; every other success names its media type and schema.
        if (s === '204') expect([where, r.content]).toEqual([where, undefined]);
        else expect([where, s, Object.values(r.content ?? {}).every((c) => c.schema !== undefined) && Object.keys(r.content ?? {}).length > 0]).toEqual([where, s, true]);
      }
      const errors = statuses.filter((s) => /^[45]\d\d$/.test(s));
      expect([where, errors.length > 0]).toEqual([where, true]);
      for (const s of errors) expect([where, s, op.responses[s]!.content]).toEqual([where, s, { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } }]);
      // Every route but the probes needs a token, and says so with 401 (and 429 for the concurrency limit).
      if (path === '/healthz' || path === '/readyz') expect([where, op.security]).toEqual([where, []]);
      else expect([where, statuses]).toEqual([where, expect.arrayContaining(['401', '429'])]);
      // Writes document 403 (read-only tokens).
      if (method !== 'get' || path.startsWith('/v1/tokens')) expect([where, statuses]).toEqual([where, expect.arrayContaining(['403'])]);
      // Path templates have their parameters.
      for (const name of [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])) expect([where, op.parameters?.some((p) => p.in === 'path' && p.name === name)]).toEqual([where, true]);
      // Every reference resolves.
      for (const m of JSON.stringify(op).matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)) expect([where, m[1], doc.components.schemas[m[1]!] !== undefined]).toEqual([where, m[1], true]);
    }
    // Request bodies of the routes that take one.
    const body = (path: string, method: string) => doc.paths[path]![method]!.requestBody?.content;
    expect(Object.values(body('/v1/files/{path}', 'put')!)[0]!.schema).toEqual({ type: 'string', format: 'binary' });
    expect(Object.values(body('/v1/messages', 'post')!)[0]!.schema).toEqual({ $ref: '#/components/schemas/SendMessage' });
    expect(Object.values(body('/v1/tokens', 'post')!)[0]!.schema).toEqual({ $ref: '#/components/schemas/CreateToken' });
  });

  /** Finds the documented operation of a real request. */
  function operationOf(method: string, url: string): { template: string; op: Operation } {
    const path = url.split('?')[0]!;
    for (const [template, ops] of Object.entries(doc.paths)) {
      const re = new RegExp(`^${template.replace(/\{path\}/g, '.+').replace(/\{\w+\}/g, '[^/]+')}$`);
      const op = ops[method.toLowerCase()];
      if (re.test(path) && op) return { template, op };
    }
    throw new Error(`${method} ${url} is not in the document`);
  }

  /** Sends a request and checks its answer against the document: status documented, body valid. */
  async function conforms(method: string, url: string, expected: number, opts: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {}): Promise<HttpResult> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== null) headers['authorization'] = `Bearer ${opts.token ?? admin}`;
    const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(JSON.stringify(opts.body));
    const r = await request(gw.port, method, url, { headers, body });
    const where = `${method} ${url}`;
    expect([where, r.status]).toEqual([where, expected]);
    const { op } = operationOf(method, url);
    const documented = op.responses[String(r.status)];
    expect([where, documented !== undefined]).toEqual([where, true]);
    if (r.status === 204 || r.status === 304) {
      expect(r.body.length).toBe(0);
      return r;
    }
    const type = String(r.headers['content-type'] ?? '').split(';')[0]!;
    const media = documented!.content?.[type];
    expect([where, type, media !== undefined]).toEqual([where, type, true]);
    if (type === 'application/json') {
      const schema = JSON.parse(JSON.stringify(media!.schema).replace(/"#\/components/g, '"doc#/components'));
      const validate = ajv.compile(schema);
      const value = json(r);
      if (!validate(value)) throw new Error(`${where} ${r.status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
    }
    return r;
  }

  it('real answers of every JSON route match their documented schemas', async () => {
    await conforms('PUT', '/v1/files/docs/a%20b.txt', 201, { body: Buffer.from('first') });
    await conforms('PUT', '/v1/files/docs/a%20b.txt', 201, { body: Buffer.from('second') });
    await conforms('GET', '/v1/files?prefix=docs/&limit=1', 200);
    await conforms('GET', '/v1/files/docs/a%20b.txt', 200);
    await conforms('GET', '/v1/files/docs/a%20b.txt', 206, { headers: { range: 'bytes=1-2' } });
    const etag = (await request(gw.port, 'HEAD', '/v1/files/docs/a%20b.txt', { headers: { authorization: `Bearer ${admin}` } })).headers['etag']!;
    await conforms('GET', '/v1/files/docs/a%20b.txt', 304, { headers: { 'if-none-match': etag } });
    await conforms('GET', '/v1/files/docs/a%20b.txt', 416, { headers: { range: 'bytes=100-' } });
    await conforms('GET', '/v1/versions/docs/a%20b.txt', 200);
    await conforms('POST', '/v1/versions/docs/a%20b.txt?version=1', 201);
    await conforms('DELETE', '/v1/versions/docs/a%20b.txt?version=2', 200);
    await conforms('DELETE', '/v1/files/docs/a%20b.txt', 204);
    // Deletion records in a history carry `deleted: true`.
    const history = await conforms('GET', '/v1/versions/docs/a%20b.txt', 200);
    expect(json(history).versions.at(-1).deleted).toBe(true);
    await conforms('GET', '/v1/files/docs/missing', 404);
    await conforms('GET', '/v1/files/a/../b', 400);
    await conforms('GET', '/v1/files', 401, { token: null });

    await conforms('GET', '/v1/nodes', 200);
    await conforms('GET', '/v1/node', 200);
    await conforms('GET', '/v1/replication', 200);
    fake.lastRepair = {
      finishedUnixMs: 1_700_000_000_000, folders: 1, objects: 3, pushed: 1, pushedBytes: 10, deleted: 0, failed: 0, underReplicated: 1, durationMs: 7,
      foldersHealth: [{ folder: 'a'.repeat(32), objects: 3, chunks: 2, underReplicated: 1, chunksUnderReplicated: 1, soleCopy: 0 }],
    };
    expect(json(await conforms('GET', '/v1/replication', 200)).folders).toHaveLength(1);
    await conforms('GET', '/v1/node', 200);
    await conforms('GET', '/v1/recover', 200);
    await conforms('POST', '/v1/recover', 202);
    await conforms('GET', '/v1/recover', 200);
    await conforms('POST', '/v1/recover?wait=true', 200);
    await conforms('POST', '/v1/recover?wait=maybe', 400);

    await conforms('POST', '/v1/messages', 201, { body: { to: 'b'.repeat(32), topic: 'chat/x', body: 'hi' } });
    await conforms('POST', '/v1/messages', 201, { body: { topic: 'chat/x', bodyBase64: 'AP8=' } });
    await conforms('POST', '/v1/messages', 404, { body: { to: 'e'.repeat(32), topic: 'chat/x', body: 'hi' } });
    await conforms('POST', '/v1/messages', 503, { body: { to: 'd'.repeat(32), topic: 'chat/x', body: 'hi' } });
    await conforms('GET', '/v1/messages', 200);
    await conforms('GET', '/v1/messages?after=nope', 400);

    const created = json(await conforms('POST', '/v1/tokens', 201, { body: { name: 'reader', scope: 'read' } }));
    await conforms('GET', '/v1/tokens', 200);
    await conforms('PUT', '/v1/files/docs/ro.txt', 403, { body: Buffer.from('x'), token: created.token });
    await conforms('POST', '/v1/tokens', 400, { body: { scope: 'root' } });
    await conforms('DELETE', `/v1/tokens/${created.id}`, 204);
    await conforms('DELETE', `/v1/tokens/${created.id}`, 404);

    await conforms('GET', '/healthz', 200, { token: null });
    await conforms('GET', '/readyz', 200, { token: null });
    await conforms('GET', '/metrics', 200);
  });

  it('the schemas are strict enough to catch a wrong answer', () => {
    const check = (name: string, value: unknown) => ajv.compile({ $ref: `doc#/components/schemas/${name}` })(value);
    const file = { path: 'a', version: 1, size: 0, sha256: '0'.repeat(64), updated: '2026-01-01T00:00:00.000Z', chunks: 0 };
    expect(check('File', file)).toBe(true);
    expect(check('File', { ...file, extra: 1 })).toBe(false);
    expect(check('File', { ...file, size: '0' })).toBe(false);
    expect(check('File', { ...file, updated: 'yesterday' })).toBe(false);
    expect(check('Error', { error: { code: 'not_found', message: 'x' } })).toBe(true);
    expect(check('Error', { error: { code: 'teapot', message: 'x' } })).toBe(false);
    expect(check('FileList', { files: [file], next: null })).toBe(true);
    expect(check('FileList', { files: [file] })).toBe(false);
  });
});
