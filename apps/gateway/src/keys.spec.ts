/** The vault-key routes over a fake node: key info, rotation, delete with shredding; auth and bad input. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { TokenStore } from './auth/token-store';
import { startGateway, type RunningGateway } from './gateway';
import { NodeClient } from './node-client';
import { FakeNode, json, request } from './testing/fake-node';

const log = pino({ level: 'silent' });

describe('gateway vault-key routes', () => {
  let fake: FakeNode;
  let node: NodeClient;
  let gw: RunningGateway;
  let admin: string;
  let dir: string;
  const req = (method: string, path: string, opts: Parameters<typeof request>[3] = {}) =>
    request(gw.port, method, path, { ...opts, headers: { authorization: `Bearer ${admin}`, ...opts.headers } });

  beforeAll(async () => {
    fake = await new FakeNode().start();
    node = new NodeClient({}, { address: fake.address });
    dir = mkdtempSync(join(tmpdir(), 'gw-keys-'));
    const { store, created } = await TokenStore.open(dir);
    admin = created!.token;
    gw = await startGateway({ node, log, tokens: store }, { host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await gw.close();
    node.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the key, rotates it, and shreds a file (every version or one)', async () => {
    const info = await req('GET', '/v1/keys');
    expect([info.status, json(info)]).toEqual([200, { fingerprint: '0123456789abcdef', createdUnixMs: 1_700_000_000_000, previousFingerprints: [], rotationUnfinished: false }]);
    const rot = await req('POST', '/v1/keys/rotate');
    expect(rot.status).toBe(200);
    expect(json(rot)).toMatchObject({ retiredFingerprints: ['0123456789abcdef'], manifestsRewritten: 2, versionsShredded: 0, notice: expect.stringContaining('recovery key') });
    expect(json(await req('GET', '/v1/keys')).fingerprint).toBe(json(rot).fingerprint);

    for (const body of ['one', 'two']) expect((await req('PUT', '/v1/files/s/secret%20file.txt', { body: Buffer.from(body) })).status).toBe(201);
    const one = await req('DELETE', '/v1/shred/s/secret%20file.txt?version=2');
    expect([one.status, json(one).removed, json(one).rotation.versionsShredded]).toEqual([200, 1, 1]);
    const all = await req('DELETE', '/v1/shred/s/secret%20file.txt');
    expect([all.status, json(all).removed]).toEqual([200, 1]);
    expect(fake.calls.filter((c) => c === 'ShredFile')).toHaveLength(2);
    expect((await req('DELETE', '/v1/shred/s/secret%20file.txt')).status).toBe(404);
  });

  it('refuses bad paths and versions before calling the node, and a read-only token', async () => {
    const before = fake.calls.length;
    expect((await req('DELETE', '/v1/shred/a/%2e%2e')).status).toBe(400);
    expect((await req('DELETE', '/v1/shred/a.txt?version=0')).status).toBe(400);
    expect((await req('DELETE', '/v1/shred/a.txt?version=x')).status).toBe(400);
    expect(fake.calls.length).toBe(before);
    const ro = json(await req('POST', '/v1/tokens', { body: Buffer.from('{"scope":"read"}') })).token;
    const h = { authorization: `Bearer ${ro}` };
    expect((await request(gw.port, 'GET', '/v1/keys', { headers: h })).status).toBe(200);
    expect((await request(gw.port, 'POST', '/v1/keys/rotate', { headers: h })).status).toBe(403);
    expect((await request(gw.port, 'DELETE', '/v1/shred/a.txt', { headers: h })).status).toBe(403);
    expect((await request(gw.port, 'GET', '/v1/keys')).status).toBe(401);
  });

  it('lists the routes in the OpenAPI document', async () => {
    const d = json(await request(gw.port, 'GET', '/docs-json'));
    expect(Object.keys(d.paths)).toEqual(expect.arrayContaining(['/v1/keys', '/v1/keys/rotate', '/v1/shred/{path}']));
  });
});
