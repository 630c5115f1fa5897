/**
 * Garbage collection across real processes: 3 nodes (R = 3, W = 2) and the gateway on node1. A node is
 * SIGKILLed; while it is down, a version is removed (`DELETE /v1/versions/...`) and another file shredded
 * (`DELETE /v1/shred/...`): the two live nodes delete the garbage at once. When the node returns it still
 * holds every garbage object on its disk; the GC records reach it and it deletes them, and its repair
 * pushes of that garbage are never stored again by the others. Live files read back identical throughout.
 * Also: an upload the client abandons halfway leaves no object on any node (its GC record collects them).
 * Objects are counted as files under each node's data/<owner>/ directory.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { eventually, putSeeded, request, seededSha, setBearerToken, walk } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const MiB = 1024 * 1024;

jest.setTimeout(240_000);

describe('garbage collection with a node offline (3 nodes + gateway)', () => {
  let root: string;
  let net: any;
  let base: string;
  let ownerId: string;

  /** Object files of the owner's folder on one node, as "chunks/<id>", "manifests/<id>", "gc/<id>". */
  const objectsOn = async (node: any): Promise<Set<string>> => {
    const out = new Set<string>();
    for (const kind of ['chunks', 'manifests', 'gc']) {
      for (const p of await walk(join(node.dataDir, ownerId, kind))) if (/^[0-9a-f]{64}$/.test(basename(p))) out.add(`${kind}/${basename(p)}`);
    }
    return out;
  };
  const readBack = async (files: { path: string; sha: string }[]) => {
    for (const f of files) {
      const get = await request(`${base}/v1/files/${f.path}`, 'GET');
      expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
    }
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-gc-'));
    net = await startNetwork({
      root,
      nodes: 3,
      output: { dir: join(root, 'logs') },
      env: { LOG_LEVEL: 'info', NODE_HEARTBEAT_MS: '300', NODE_REPAIR_GRACE_MS: '60000', NODE_REPAIR_INTERVAL_MS: '2000', NODE_REPLICAS: '3', NODE_WRITE_QUORUM: '2' },
    });
    base = net.gatewayUrl;
    setBearerToken(net.token);
    await eventually(async () => (await request(`${base}/v1/nodes`, 'GET')).json.nodes.filter((n: any) => n.state === 'connected').length === 2, 30_000, 'node1 connected to the 2 others');
    ownerId = (await request(`${base}/v1/node`, 'GET')).json.serverId;
  });

  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  it('a node down during a removal and a shred deletes the garbage when it returns, and none of it comes back', async () => {
    const [n1, n2, n3] = net.nodes;
    const live = [
      { path: 'keep/a.bin', size: 2 * MiB + 3, seed: 1 },
      { path: 'doc.bin', size: MiB + 9, seed: 4 }, // its v2 stays
    ];
    expect((await putSeeded(base, 'doc.bin', 3 * MiB, 3)).status).toBe(201); // v1: removed below
    for (const f of live) expect((await putSeeded(base, f.path, f.size, f.seed)).status).toBe(201);
    expect((await putSeeded(base, 'secret.bin', MiB + 5, 2)).status).toBe(201); // shredded below
    const files = await Promise.all(live.map(async (f) => ({ path: f.path, sha: await seededSha(f.size, f.seed) })));
    // Every object on all three nodes (R = 3) before the failure.
    await eventually(async () => {
      const [a, b, c] = await Promise.all(net.nodes.map(objectsOn));
      return a!.size > 0 && [b!, c!].every((s) => s.size === a!.size);
    }, 30_000, 'every object on the three nodes');
    const before = await objectsOn(n3);

    await n3.kill();
    const removed = await request(`${base}/v1/versions/doc.bin?version=1`, 'DELETE');
    expect([removed.status, removed.json]).toEqual([200, { removed: 1 }]);
    const shred = await request(`${base}/v1/shred/secret.bin`, 'DELETE');
    expect(shred.status).toBe(200);
    expect(shred.json.rotation.garbage).toMatchObject({ records: 1, chunks: 2 });
    // Garbage: what node 3 held that the live nodes no longer hold (doc v1's 3 chunks, the secret's 2 chunks,
    // the shredded and replaced manifests).
    const garbage = async () => {
      const [a, b] = await Promise.all([objectsOn(n1), objectsOn(n2)]);
      return [...before].filter((o) => !a.has(o) && !b.has(o));
    };
    await eventually(async () => (await garbage()).filter((o) => o.startsWith('chunks/')).length === 5, 20_000, 'the live nodes deleted the garbage');
    const dead = await garbage();
    const records = [...(await objectsOn(n1))].filter((o) => o.startsWith('gc/'));
    expect(records).toHaveLength(2); // the removal's and the shred's
    await readBack(files);
    expect((await request(`${base}/v1/files/secret.bin`, 'GET')).status).toBe(404);

    // Node 3 returns with the garbage still on its disk.
    await n3.start();
    for (const o of dead) expect((await objectsOn(n3)).has(o)).toBe(true);
    await eventually(async () => {
      const mine = await objectsOn(n3);
      return records.every((r) => mine.has(r)) && dead.every((o) => !mine.has(o));
    }, 60_000, 'node 3 got the GC records and deleted the garbage');
    // A few repair passes later: nothing of it anywhere, and the three nodes hold the same objects.
    await new Promise((r) => setTimeout(r, 5000));
    const after = await Promise.all(net.nodes.map(objectsOn));
    for (const s of after) for (const o of dead) expect(s.has(o)).toBe(false);
    expect([...after[1]!].sort()).toEqual([...after[0]!].sort());
    expect([...after[2]!].sort()).toEqual([...after[0]!].sort());
    const info = (await request(`${base}/v1/node`, 'GET')).json;
    expect(info.garbage.records).toBe(2);
    await readBack(files);
  });

  it('an upload the client abandons halfway leaves nothing on any node: the chunks it had placed are collected everywhere', async () => {
    const before = await Promise.all(net.nodes.map(objectsOn));
    const objects = (s: Set<string>) => [...s].filter((o) => !o.startsWith('gc/')).sort();
    const records = (s: Set<string>) => [...s].filter((o) => o.startsWith('gc/')).length;
    const u = new URL(`${base}/v1/files/abandoned.bin`);
    const req = http.request({ hostname: u.hostname, port: u.port, path: u.pathname, method: 'PUT', headers: { 'content-length': 8 * MiB, authorization: `Bearer ${net.token}` } });
    req.on('error', () => undefined);
    req.on('response', (res) => res.resume());
    for (let i = 0; i < 5; i++) req.write(randomBytes(MiB));
    // Wait until node 1 holds some of its chunks, then go away with 3 MiB unsent.
    await eventually(async () => objects(await objectsOn(net.nodes[0])).length >= objects(before[0]!).length + 2, 30_000, 'chunks of the upload on node 1');
    req.destroy();
    await eventually(
      async () => {
        const now = await Promise.all(net.nodes.map(objectsOn));
        return now.every((s, i) => JSON.stringify(objects(s)) === JSON.stringify(objects(before[i]!)) && records(s) === records(before[i]!) + 1);
      },
      30_000,
      "every node back to its objects before the upload, with the upload's GC record",
    );
    expect((await request(`${base}/v1/files/abandoned.bin`, 'GET')).status).toBe(404);
  });
});
