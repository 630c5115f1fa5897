/**
 * Placement, repair and rebalancing with real processes: 5 nodes (peer-node + crypto + storage each) and
 * the gateway on node1. Files are put; a holder is SIGKILLed; reads still succeed; past the grace period
 * every chunk and manifest is back to R copies on live nodes; the killed node returns and the extra
 * copies are cleaned up (every object on exactly R nodes); a node added at run time gets new placements.
 * Copies are counted as object files under each node's data/<folder>/ directory.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, putSeeded, request, seededSha, setBearerToken, walk } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const run = promisify(execFile);
const BUF = join(__dirname, '../../node_modules/.bin/buf');
const MiB = 1024 * 1024;
const R = 3;
const GRACE_MS = 6000;

jest.setTimeout(300_000);

describe('repair and rebalancing (5 nodes + gateway)', () => {
  let root: string;
  let net: any;
  let base: string;
  let ownerId: string;
  const files: { path: string; size: number; seed: number; sha: string }[] = [];

  /** Object files of the owner's folder on one node: "chunks/<id>" and "manifests/<id>". */
  const objectsOn = async (node: any): Promise<Set<string>> => {
    const out = new Set<string>();
    for (const kind of ['chunks', 'manifests']) {
      for (const p of await walk(join(node.dataDir, ownerId, kind))) {
        const name = basename(p);
        if (/^[0-9a-f]{64}$/.test(name)) out.add(`${kind}/${name}`);
      }
    }
    return out;
  };
  /** object -> node names holding it, over `nodes`. */
  const copies = async (nodes: any[]): Promise<Map<string, string[]>> => {
    const m = new Map<string, string[]>();
    for (const n of nodes) for (const o of await objectsOn(n)) m.set(o, [...(m.get(o) ?? []), n.name]);
    return m;
  };
  /** True when every object of the owner's folder (as the owner lists them) has exactly `want` copies on `nodes`. */
  const allAt = async (nodes: any[], want: number, expectAtLeast: number): Promise<boolean> => {
    const m = await copies(nodes);
    if (m.size < expectAtLeast) return false;
    return [...m.values()].every((hs) => hs.length === want);
  };
  const nodeInfo = async (node: any) => {
    const r = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://${node.clientAddress}/vault.node.v1.NodeService/GetNodeInfo`, '-d', '{}']);
    return JSON.parse(r.stdout);
  };
  const readAllBack = async () => {
    for (const f of files) {
      const get = await request(`${base}/v1/files/${f.path}`, 'GET');
      expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
    }
  };
  let totalObjects = 0;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-repair-'));
    if (process.env['KEEP_TEST_DIRS']) console.log(`repair test data and logs: ${root}`);
    net = await startNetwork({
      root,
      nodes: 5,
      output: { dir: join(root, 'logs') },
      env: { LOG_LEVEL: 'info', NODE_HEARTBEAT_MS: '300', NODE_REPAIR_GRACE_MS: String(GRACE_MS), NODE_REPAIR_INTERVAL_MS: '2000', NODE_REPLICAS: String(R), NODE_WRITE_QUORUM: '2' },
    });
    base = net.gatewayUrl;
    setBearerToken(net.token);
    await eventually(async () => {
      const r = await request(`${base}/v1/nodes`, 'GET');
      return r.json.nodes.filter((n: any) => n.state === 'connected').length === 4;
    }, 30_000, 'node1 connected to the 4 others');
    ownerId = (await request(`${base}/v1/node`, 'GET')).json.serverId;
  });

  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  it('places every chunk and manifest on exactly R nodes, spread over the peers by HRW', async () => {
    const specs: [string, number][] = [
      ['a/big.bin', 9 * MiB + 5],
      ['a/medium.bin', 3 * MiB],
      ['b/small.bin', 1000],
      ['b/empty.bin', 0],
      ['c/odd.bin', 5 * MiB - 1],
    ];
    for (const [i, [path, size]] of specs.entries()) {
      const seed = 100 + i;
      const put = await putSeeded(base, path, size, seed);
      expect(put.status).toBe(201);
      files.push({ path, size, seed, sha: await seededSha(size, seed) });
    }
    const chunks = specs.reduce((n, [, size]) => n + Math.ceil(size / MiB), 0);
    totalObjects = chunks + specs.length;
    await eventually(() => allAt(net.nodes, R, totalObjects), 30_000, 'every object on exactly R nodes');
    const m = await copies(net.nodes);
    expect(m.size).toBe(totalObjects);
    // The owner holds everything; every other node holds a share.
    for (const hs of m.values()) expect(hs).toContain('node1');
    for (const n of net.nodes.slice(1)) expect((await objectsOn(n)).size).toBeGreaterThan(0);
    const info = await nodeInfo(net.nodes[0]);
    expect(info).toMatchObject({ replicas: String(R), writeQuorum: '2' });
    await eventually(async () => !(await nodeInfo(net.nodes[0])).backlog?.objects, 20_000, 'backlog drained');
  });

  let victim: any;

  it('after a holder is SIGKILLed, reads succeed, and past the grace period every object is back to R copies on live nodes', async () => {
    // The peer with the most copies.
    const m = await copies(net.nodes);
    const count = new Map<string, number>();
    for (const hs of m.values()) for (const h of hs) if (h !== 'node1') count.set(h, (count.get(h) ?? 0) + 1);
    const victimName = [...count.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    victim = net.nodes.find((n: any) => n.name === victimName);
    const held = count.get(victimName)!;
    expect(held).toBeGreaterThan(0);
    const killedAt = Date.now();
    await victim.kill();
    await readAllBack();
    const live = net.nodes.filter((n: any) => n !== victim);
    // Nothing is re-replicated before the grace period: copies stay where they were meanwhile. A node
    // samples its connections once a second (GRACE_MS / 4, at most 1 s), so it may have last seen the
    // victim up to a tick before the kill: the earliest a pass can treat it as gone is GRACE_MS - TICK_MS
    // after the kill. The look is only evidence if it finished before that (a loaded CI machine may take
    // longer to read everything back; then there is nothing to check this time).
    const TICK_MS = Math.min(1000, GRACE_MS / 4);
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + GRACE_MS / 3 - Date.now())));
    const during = await copies(live);
    if (Date.now() - killedAt < GRACE_MS - TICK_MS - 250) {
      expect([...during.values()].filter((hs) => hs.length < R)).toHaveLength(held);
    } else {
      console.warn(`repair.spec: the look during the grace period ended ${Date.now() - killedAt} ms after the kill; not checked`);
    }
    await eventually(() => allAt(live, R, totalObjects), 90_000, 'R copies on live nodes after the grace period');
    await readAllBack();
  });

  it('when the killed node returns, the extra copies are cleaned up: every object on exactly R nodes', async () => {
    await victim.start();
    await eventually(() => allAt(net.nodes, R, totalObjects), 90_000, 'exactly R copies after the node returned');
    // The returned node kept its copies (it is desired again), so it still holds objects.
    expect((await objectsOn(victim)).size).toBeGreaterThan(0);
    await readAllBack();
    const info = await nodeInfo(net.nodes[0]);
    expect(info.lastRepair).toBeDefined();
  });

  it('a node added at run time receives new placements (and its share of the old ones)', async () => {
    const added = await net.addNode();
    await eventually(async () => {
      const r = await request(`${base}/v1/nodes`, 'GET');
      return r.json.nodes.filter((n: any) => n.state === 'connected').length === 5;
    }, 30_000, 'node1 connected to the added node');
    const before = await objectsOn(added);
    const path = 'd/after-join.bin';
    const size = 24 * MiB + 7;
    const put = await putSeeded(base, path, size, 777);
    expect(put.status).toBe(201);
    files.push({ path, size, seed: 777, sha: await seededSha(size, 777) });
    totalObjects += Math.ceil(size / MiB) + 1;
    await eventually(() => allAt(net.nodes, R, totalObjects), 90_000, 'exactly R copies with six nodes');
    const after = await objectsOn(added);
    const fresh = [...after].filter((o) => !before.has(o));
    // 25 new objects, 2 peer copies each over 5 peers: the newcomer gets ~10; none would be ~1e-5 likely.
    expect(fresh.length).toBeGreaterThan(0);
    await readAllBack();
  });
});
