/**
 * The walking skeleton end to end: 3 real nodes (peer-node + crypto-service + storage-service each) and
 * the gateway, as separate processes on loopback, driven over HTTP and with an external gRPC client.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, putSeeded, request, seededSha, seededStream, setBearerToken, treeContains, walk } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const run = promisify(execFile);
const BUF = join(__dirname, '../../node_modules/.bin/buf');
const MiB = 1024 * 1024;
const CHUNK = MiB;

jest.setTimeout(180_000);

describe('local network (3 nodes + gateway)', () => {
  let root: string;
  let net: any;
  let base: string;
  let ownerId: string;
  const files: { path: string; size: number; seed: number; sha: string; prefix?: Buffer }[] = [];
  // The listing holds exactly the stored files. Compared by path, not count: while a wiped node restores,
  // manifests arrive in any order, so a file whose versions were all removed can be live for a moment.
  const sameFiles = (list: any) =>
    JSON.stringify((list?.files ?? []).map((f: any) => f.path).sort()) === JSON.stringify(files.map((f) => f.path).sort());
  const MARKER = Buffer.from('PLAINTEXT-MARKER-7f3a9c');
  const SECRET_NAME = 'top-secret-report';

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-system-'));
    if (process.env['KEEP_TEST_DIRS']) console.log(`system test data and logs: ${root}`);
    net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'info', NODE_HEARTBEAT_MS: '500' } });
    base = net.gatewayUrl;
    expect(net.token).toMatch(/^dvt_/);
    setBearerToken(net.token);
    // All three nodes connected to each other before the first put (R = 3 needs both peers).
    await eventually(async () => {
      const r = await request(`${base}/v1/nodes`, 'GET');
      return r.json.nodes.filter((n: any) => n.state === 'connected').length === 2;
    }, 20000, 'peers connected');
    ownerId = (await request(`${base}/v1/node`, 'GET')).json.serverId;
  });

  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  const sizes: [string, number][] = [
    ['empty', 0],
    ['one-byte', 1],
    ['one-chunk', CHUNK],
    ['one-chunk-plus-one', CHUNK + 1],
    ['twenty-mib', 20 * MiB + 3],
  ];

  it.each(sizes)('stores and returns a %s file byte for byte', async (name, size) => {
    const seed = size + 11;
    const prefix = name === 'twenty-mib' ? MARKER : undefined;
    const path = name === 'twenty-mib' ? `reports/${SECRET_NAME}.bin` : `sizes/${name}.bin`;
    const sha = await seededSha(size, seed, prefix);
    const put = await putSeeded(base, path, size, seed, prefix);
    expect(put.status).toBe(201);
    expect(put.json).toMatchObject({ path, version: 1, size, sha256: sha });
    const get = await request(`${base}/v1/files/${path}`, 'GET');
    expect(get.status).toBe(200);
    expect(get.bytes).toBe(size);
    expect(get.sha256).toBe(sha);
    expect(get.headers['etag']).toBe(`"${sha}"`);
    files.push({ path, size, seed, sha, prefix });
  });

  it('keeps a copy of every chunk and manifest on all three nodes', async () => {
    const expectedChunks = files.reduce((n, f) => n + Math.ceil(f.size / CHUNK), 0);
    const listing = async (i: number, kind: string) =>
      (await walk(join(net.nodes[i].dataDir, ownerId, kind))).map((p) => basename(p)).sort();
    const chunks0 = await listing(0, 'chunks');
    expect(chunks0).toHaveLength(expectedChunks);
    // A put returns with W=2 copies; the third follows in the background (the replication backlog).
    await eventually(async () => {
      for (const i of [1, 2]) if ((await listing(i, 'chunks')).length !== expectedChunks) return false;
      return true;
    }, 20000, 'third copies');
    for (const i of [1, 2]) {
      expect(await listing(i, 'chunks')).toEqual(chunks0);
      expect(await listing(i, 'manifests')).toEqual(await listing(0, 'manifests'));
    }
    expect(await listing(0, 'manifests')).toHaveLength(files.length);
  });

  it('leaves neither plaintext nor file names on any disk', async () => {
    for (const node of net.nodes) {
      expect(await treeContains(node.dir, MARKER)).toBeNull();
      expect(await treeContains(node.dir, Buffer.from(SECRET_NAME))).toBeNull();
    }
  });

  it('serves a chunk missing or corrupt on the owner from a peer, and repairs it', async () => {
    const f = files.find((x) => x.size > 2 * CHUNK)!;
    const chunkFiles = await walk(join(net.nodes[0].dataDir, ownerId, 'chunks'));
    // Whole-chunk victims: the empty and one-byte files' chunks are a few dozen bytes, and flipping a byte
    // past a buffer's end changes nothing (that made this test fail now and then).
    const sized = await Promise.all(chunkFiles.map(async (p) => ({ p, size: (await stat(p)).size })));
    const victims = sized.filter((c) => c.size >= CHUNK).map((c) => c.p).slice(0, 2);
    expect(victims).toHaveLength(2);
    await unlink(victims[0]!);
    const bytes = await readFile(victims[1]!);
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(victims[1]!, bytes);
    const get = await request(`${base}/v1/files/${f.path}`, 'GET');
    // Deleted/corrupted chunks may belong to any file; every file must still read back intact.
    expect(get.sha256).toBe(f.sha);
    for (const other of files) expect((await request(`${base}/v1/files/${other.path}`, 'GET')).sha256).toBe(other.sha);
    for (const v of victims) {
      const repaired = await readFile(v);
      expect(repaired.length).toBeGreaterThan(0);
      expect(repaired.equals(bytes)).toBe(false);
    }
  });

  it('lists files, rejects bad paths and unknown files, and deletes', async () => {
    const list = await request(`${base}/v1/files`, 'GET');
    expect(list.json.files.map((f: any) => f.path).sort()).toEqual(files.map((f) => f.path).sort());
    // Pages of 2 under sizes/ (4 files), as the node cuts them.
    const sized = files.map((f) => f.path).filter((p) => p.startsWith('sizes/')).sort();
    const p1 = (await request(`${base}/v1/files?prefix=sizes/&limit=2`, 'GET')).json;
    expect([p1.files.map((f: any) => f.path), p1.next]).toEqual([sized.slice(0, 2), sized[1]]);
    const p2 = (await request(`${base}/v1/files?prefix=sizes/&limit=2&after=${encodeURIComponent(p1.next)}`, 'GET')).json;
    expect([p2.files.map((f: any) => f.path), p2.next]).toEqual([sized.slice(2, 4), null]);
    for (const bad of ['..%2Fetc%2Fpasswd', 'a/%2e%2e/b', 'nul%00byte', 'a//b']) {
      const r = await request(`${base}/v1/files/${bad}`, 'PUT', undefined, { 'content-length': 0 });
      expect([bad, r.status, r.json?.error?.code]).toEqual([bad, 400, 'invalid_argument']);
    }
    expect((await request(`${base}/v1/files/no/such/file`, 'GET')).status).toBe(404);
    // The gateway's token is required: a wrong one is refused with the JSON error shape.
    const denied = await request(`${base}/v1/files`, 'GET', undefined, { authorization: 'Bearer not-a-token' });
    expect([denied.status, denied.json?.error?.code]).toEqual([401, 'unauthenticated']);
    // A range across the chunk boundary, HEAD, and a conditional GET, through the real node.
    const whole: Buffer[] = [];
    for await (const b of seededStream(CHUNK + 1, CHUNK + 1 + 11)) whole.push(b as Buffer);
    const tail = Buffer.concat(whole).subarray(CHUNK - 2);
    const part = await request(`${base}/v1/files/sizes/one-chunk-plus-one.bin`, 'GET', undefined, { range: `bytes=${CHUNK - 2}-` });
    expect([part.status, part.headers['content-range'], part.bytes]).toEqual([206, `bytes ${CHUNK - 2}-${CHUNK}/${CHUNK + 1}`, 3]);
    expect(part.sha256).toBe(createHash('sha256').update(tail).digest('hex'));
    const last = await request(`${base}/v1/files/sizes/one-chunk-plus-one.bin`, 'GET', undefined, { range: `bytes=${CHUNK}-` });
    expect([last.status, last.bytes, last.sha256]).toEqual([206, 1, createHash('sha256').update(tail.subarray(2)).digest('hex')]);
    const head = await request(`${base}/v1/files/sizes/one-chunk-plus-one.bin`, 'HEAD');
    expect([head.status, head.bytes, head.headers['content-length']]).toEqual([200, 0, String(CHUNK + 1)]);
    const fresh = await request(`${base}/v1/files/sizes/one-chunk-plus-one.bin`, 'GET', undefined, { 'if-none-match': String(head.headers['etag']) });
    expect([fresh.status, fresh.bytes]).toEqual([304, 0]);
    const put = await putSeeded(base, 'tmp/doomed.txt', 10, 1);
    expect(put.status).toBe(201);
    expect((await request(`${base}/v1/files/tmp/doomed.txt`, 'DELETE')).status).toBe(204);
    expect((await request(`${base}/v1/files/tmp/doomed.txt`, 'GET')).status).toBe(404);
    expect((await request(`${base}/v1/files/tmp/doomed.txt`, 'DELETE')).status).toBe(404);
  });

  it('keeps versions: lists them, restores an old one as the newest, deletes one', async () => {
    const [a, b] = [await putSeeded(base, 'ver/doc.bin', 3 * CHUNK + 5, 501), await putSeeded(base, 'ver/doc.bin', 1000, 502)];
    expect([a.json.version, b.json.version]).toEqual([1, 2]);
    const listed = await request(`${base}/v1/versions/ver/doc.bin`, 'GET');
    expect(listed.json.versions.map((v: any) => [v.version, v.size])).toEqual([[1, 3 * CHUNK + 5], [2, 1000]]);
    expect((await request(`${base}/v1/files/ver/doc.bin?version=1`, 'GET')).sha256).toBe(a.json.sha256);
    const restored = await request(`${base}/v1/versions/ver/doc.bin?version=1`, 'POST');
    expect([restored.status, restored.json.version, restored.json.sha256]).toEqual([201, 3, a.json.sha256]);
    expect((await request(`${base}/v1/files/ver/doc.bin`, 'GET')).sha256).toBe(a.json.sha256);
    expect((await request(`${base}/v1/versions/ver/doc.bin?version=3`, 'DELETE')).json).toEqual({ removed: 1 });
    const now = await request(`${base}/v1/files/ver/doc.bin`, 'GET');
    expect([now.headers['x-vault-version'], now.sha256]).toEqual(['2', b.json.sha256]);
    expect((await request(`${base}/v1/versions/ver/doc.bin?all=true`, 'DELETE')).json).toEqual({ removed: 2 });
    expect((await request(`${base}/v1/files/ver/doc.bin`, 'GET')).status).toBe(404);
  });

  it('is reachable with an external gRPC client (buf curl over reflection; PeerService over TLS)', async () => {
    const node = net.nodes[1];
    for (const [addr, service] of [
      [node.clientAddress, 'vault.node.v1.NodeService'],
      [node.peerAddress, 'vault.peer.v1.PeerService'],
      [node.cryptoAddress, 'vault.crypto.v1.CryptoService'],
      [node.storageAddress, 'vault.storage.v1.StorageService'],
    ]) {
      // PeerService speaks TLS with a self-signed certificate (-k); the others plaintext on loopback.
      const url = service === 'vault.peer.v1.PeerService' ? `https://${addr}` : `http://${addr}`;
      const flags = service === 'vault.peer.v1.PeerService' ? ['-k'] : ['--http2-prior-knowledge'];
      const list = await run(BUF, ['curl', '--protocol', 'grpc', ...flags, '--list-services', url]);
      expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(['grpc.health.v1.Health', service].sort());
      const health = await run(BUF, ['curl', '--protocol', 'grpc', ...flags, `${url}/grpc.health.v1.Health/Check`, '-d', '{}']);
      expect(JSON.parse(health.stdout)).toEqual({ status: 'SERVING' });
    }
    const owner = net.nodes[0];
    const ls = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://${owner.clientAddress}/vault.node.v1.NodeService/ListFiles`, '-d', '{"prefix":"sizes/"}']);
    expect(JSON.parse(ls.stdout).files.map((f: any) => f.path).sort()).toEqual(files.filter((f) => f.path.startsWith('sizes/')).map((f) => f.path).sort());
    const page = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://${owner.clientAddress}/vault.node.v1.NodeService/ListFiles`, '-d', '{"prefix":"sizes/","limit":1}']);
    expect(JSON.parse(page.stdout).files).toHaveLength(1);
    expect(JSON.parse(page.stdout).nextStartAfter).toBe(JSON.parse(page.stdout).files[0].path);
    const st = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://${owner.clientAddress}/vault.node.v1.NodeService/StatFile`, '-d', '{"path":"sizes/one-byte.bin"}']);
    expect(JSON.parse(st.stdout).file).toEqual(expect.objectContaining({ path: 'sizes/one-byte.bin', version: '1', size: '1', sha256: files.find((f) => f.path === 'sizes/one-byte.bin')!.sha }));
    const vs = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://${owner.clientAddress}/vault.node.v1.NodeService/ListVersions`, '-d', '{"path":"sizes/one-byte.bin"}']);
    expect(JSON.parse(vs.stdout).versions).toEqual([expect.objectContaining({ path: 'sizes/one-byte.bin', version: '1', size: '1' })]);
  });

  it('keeps its identity across a restart and reads everything stored before', async () => {
    await net.nodes[0].stop();
    await net.nodes[0].start();
    expect((await request(`${base}/v1/node`, 'GET')).json.serverId).toBe(ownerId);
    await eventually(async () => sameFiles((await request(`${base}/v1/files`, 'GET')).json), 20000, 'index reloaded');
    for (const f of files) expect((await request(`${base}/v1/files/${f.path}`, 'GET')).sha256).toBe(f.sha);
  });

  it('restores a wiped node from its peers (identity and key kept)', async () => {
    await net.nodes[0].kill();
    await rm(net.nodes[0].dataDir, { recursive: true, force: true });
    await net.nodes[0].start();
    expect((await request(`${base}/v1/node`, 'GET')).json.serverId).toBe(ownerId);
    await eventually(async () => sameFiles((await request(`${base}/v1/files`, 'GET')).json), 60000, 'files restored');
    for (const f of files) {
      const get = await request(`${base}/v1/files/${f.path}`, 'GET');
      expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
    }
    // An explicit recovery finds nothing left to fetch and reports the folder.
    await eventually(async () => (await request(`${base}/v1/nodes`, 'GET')).json.nodes.filter((n: any) => n.state === 'connected').length === 2, 20000, 'peers back');
    const rec = await request(`${base}/v1/recover?wait=true`, 'POST');
    expect(rec.status).toBe(200);
    expect(rec.json).toMatchObject({ peers: 2, chunks: 0, files: files.length });
  });
});
