/**
 * Partition faults (issue #8): 3 nodes (R=3, W=2) whose peer traffic all flows through fault-injecting TCP
 * proxies (tools/fault-proxy.cjs), one in front of each node's PeerService: every node advertises its proxy
 * (NODE_ADVERTISE_ADDRESS) and bootstraps from the others' proxies, so what node A sends to node B crosses
 * B's proxy (TLS passes through untouched). While the proxies delay, drop, cut one direction, or cut streams
 * in the middle, every put either succeeds with W durable copies at the moment it is acknowledged or fails
 * with a clear status within a bound, and every get returns the right bytes. Once healed, anti-entropy and
 * repair bring every object back to R intact copies.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, seededSha, setBearerToken } from '../helpers';
import { bounded, copies, intact, objectsOn } from './faults-support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createFaultProxy } = require('../../tools/fault-proxy.cjs');
const KiB = 1024;
const MiB = 1024 * KiB;
const R = 3;
const W = 2;
/** A put that cannot reach its quorum fails after this (NODE_WRITE_TIMEOUT_MS; default 60 s). */
const WRITE_TIMEOUT_MS = 10_000;
/** Bound of every request. */
const BOUND_MS = 40_000;
const CLEAR_FAILURES = [429, 503, 504];

jest.setTimeout(240_000);

describe('partition faults: a misbehaving network between the nodes', () => {
  let root: string;
  let net: any;
  let ownerId: string;
  let token: string;
  const proxies: any[] = [];
  const logs = new Map<string, WriteStream>();
  const stored: { path: string; sha: string }[] = [];
  let seq = 0;
  const base = () => net.gatewayUrl as string;

  const connected = async (): Promise<number> => {
    const r = await bounded(`${base()}/v1/nodes`, 'GET', token, 5000);
    if (r.status !== 200) return -1;
    return (JSON.parse(r.body ?? '{}').nodes ?? []).filter((n: any) => n.state === 'connected').length;
  };
  const setAll = (fault: object) => proxies.forEach((p) => p.setFault(fault));
  /**
   * node1's own links, by address, as its log reports them ("peer connected" / "peer disconnected"). What a
   * put needs: /v1/nodes shows a member connected while it is heard on either stream (its link to node1
   * counts), but node1 replicates only over its own links.
   */
  const linkUp = new Map<string, boolean>();
  /**
   * Waits until node1's links to both peers are up again after the previous test healed. A link that went
   * silent redials on a new connection; one dialed into a black hole waits out its TLS handshake bound (10 s)
   * before it dials again, so each fault starts from a healed network rather than from the previous one's tail.
   */
  const healed = () => eventually(async () => proxies.slice(1).every((p) => linkUp.get(p.address) === true), 60_000, "node1's links to both peers up");

  /**
   * One put under faults: 201 with at least W copies of each of its new objects on disk at that moment, or a
   * clear failure. Returns the status.
   */
  const guardedPut = async (size: number): Promise<number | string> => {
    const i = seq++;
    const path = `part/${i}.bin`;
    const seed = 5000 + i;
    const before = await objectsOn(net.nodes[0].dataDir, ownerId);
    const put = await bounded(`${base()}/v1/files/${path}`, 'PUT', token, BOUND_MS, { size, seed });
    if (put.status === 201) {
      const fresh = [...(await objectsOn(net.nodes[0].dataDir, ownerId))].filter((o) => !before.has(o));
      expect(fresh.length).toBeGreaterThanOrEqual(1 + Math.ceil(size / MiB));
      const m = await copies(net.nodes, ownerId);
      for (const o of fresh) expect([path, o, (m.get(o) ?? []).length >= W]).toEqual([path, o, true]);
      stored.push({ path, sha: await seededSha(size, seed) });
    } else {
      expect([path, put.status, put.error, CLEAR_FAILURES.includes(put.status as number)]).toEqual([path, put.status, undefined, true]);
      expect(put.body).toMatch(/"message"/);
    }
    return put.status;
  };
  /** Every stored file reads back with the right bytes (a clear failure is allowed only if `mayFail`). */
  const readAll = async (mayFail = false) => {
    for (const f of stored) {
      const get = await bounded(`${base()}/v1/files/${f.path}`, 'GET', token, BOUND_MS);
      if (get.status === 200 || !mayFail) expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
      else expect([f.path, get.status, CLEAR_FAILURES.includes(get.status as number)]).toEqual([f.path, get.status, true]);
    }
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-faults-part-'));
    if (process.env['KEEP_TEST_DIRS']) console.log(`partition test data and logs: ${root}`);
    for (let i = 0; i < 3; i++) proxies.push(await createFaultProxy());
    mkdirSync(join(root, 'logs'), { recursive: true });
    // Logs to files, and each node's real peer port (from its "listening" line) becomes its proxy's target.
    const output = (proc: string, line: string) => {
      let s = logs.get(proc);
      if (!s) logs.set(proc, (s = createWriteStream(join(root, 'logs', `${proc.replace('/', '-')}.log`), { flags: 'a' })));
      s.write(line + '\n');
      if (proc === 'node1/peer' && (line.includes('"peer connected"') || line.includes('"peer disconnected"'))) {
        try {
          const j = JSON.parse(line);
          linkUp.set(j.peer, j.msg === 'peer connected');
        } catch {
          // not a log record
        }
      }
      const m = /^node(\d)\/peer$/.exec(proc);
      if (m && line.includes('"node-peer"') && line.includes('"listening"')) proxies[Number(m[1]) - 1].setTarget(`127.0.0.1:${JSON.parse(line).port}`);
    };
    net = await startNetwork({
      root,
      nodes: 3,
      output,
      env: {
        LOG_LEVEL: 'info',
        NODE_HEARTBEAT_MS: '300',
        NODE_REPLICAS: String(R),
        NODE_WRITE_QUORUM: String(W),
        NODE_REPAIR_INTERVAL_MS: '2000',
        NODE_SYNC_INTERVAL_MS: '3000',
        NODE_SERVICE_TIMEOUT_MS: '10000',
        NODE_WRITE_TIMEOUT_MS: String(WRITE_TIMEOUT_MS),
      },
      nodeEnv: (i: number) => ({
        NODE_ADVERTISE_ADDRESS: proxies[i - 1].address,
        NODE_BOOTSTRAP: proxies.filter((_, j) => j !== i - 1).map((p) => p.address).join(','),
      }),
    });
    token = net.token;
    setBearerToken(token);
    await eventually(async () => (await connected()) === 2, 30_000, 'node1 connected to both peers');
    await healed();
    const node = await bounded(`${base()}/v1/node`, 'GET', token, 5000);
    ownerId = JSON.parse(node.body!).serverId;
    // Peer traffic really crosses the proxies.
    for (const p of proxies) expect(p.stats.connections).toBeGreaterThan(0);
    for (const size of [1000, MiB + 1]) expect(await guardedPut(size)).toBe(201);
  });

  afterAll(async () => {
    await net?.stop();
    await Promise.all(proxies.map((p) => p.close()));
    for (const s of logs.values()) s.end();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  it('delay on every link: puts succeed with W copies, gets return the right bytes', async () => {
    await healed();
    setAll({ kind: 'delay', ms: 40 });
    for (const size of [1000, 2 * MiB + 3]) expect(await guardedPut(size)).toBe(201);
    await readAll();
    setAll({ kind: 'pass' });
  });

  it('one peer black-holed (drop both ways): puts keep W copies or fail clearly; gets stay right', async () => {
    await healed();
    proxies[2].setFault({ kind: 'drop' });
    const statuses = [];
    for (const size of [1000, 3 * MiB + 5, 64 * KiB]) statuses.push(await guardedPut(size));
    await readAll();
    proxies[2].setFault({ kind: 'pass' });
    // With W=2 of R=3, one unreachable peer must not stop writes (node2 is reachable).
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThan(0);
  });

  it('one direction cut (a peer receives but its answers are lost): same guarantees', async () => {
    await healed();
    proxies[1].setFault({ kind: 'oneway', direction: 'fromTarget' });
    const statuses = [];
    for (const size of [1000, 2 * MiB]) statuses.push(await guardedPut(size));
    await readAll();
    proxies[1].setFault({ kind: 'pass' });
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThan(0);
  });

  it('streams cut in the middle on both peers: same guarantees', async () => {
    await healed();
    proxies[1].setFault({ kind: 'cut', afterBytes: 300 * KiB });
    proxies[2].setFault({ kind: 'cut', afterBytes: 500 * KiB });
    for (const size of [4 * MiB + 1, 1000]) await guardedPut(size);
    await readAll();
    setAll({ kind: 'pass' });
  });

  it('connections to both peers reset every few MiB: replica streams resume and an 8 MiB put succeeds', async () => {
    await healed();
    proxies[1].setFault({ kind: 'cut', afterBytes: 3 * MiB });
    proxies[2].setFault({ kind: 'cut', afterBytes: 4 * MiB });
    expect(await guardedPut(8 * MiB + 9)).toBe(201);
    await readAll();
    expect(proxies[1].stats.cuts + proxies[2].stats.cuts).toBeGreaterThan(0);
    setAll({ kind: 'pass' });
  });

  it('owner cut off from every peer: puts fail clearly within the bound (no W), gets of stored files still right', async () => {
    await healed();
    setAll({ kind: 'drop' });
    for (const size of [1000, MiB + 1]) expect(await guardedPut(size)).not.toBe(201);
    await readAll();
    setAll({ kind: 'pass' });
  });

  it('after healing, every node reconnects and every object is back at R intact copies', async () => {
    setAll({ kind: 'pass' });
    await eventually(async () => (await connected()) === 2, 60_000, 'node1 connected to both peers after healing');
    await healed();
    const ackedObjects = await objectsOn(net.nodes[0].dataDir, ownerId);
    await eventually(
      async () => {
        const m = await copies(net.nodes, ownerId);
        return [...ackedObjects].every((o) => (m.get(o) ?? []).length === R);
      },
      // node1's links are up (healed() above), so the next repair pass (every 2 s here) pushes what is
      // missing: 2-12 s in quiet runs. Generous for a loaded CI machine. (Before a silent link dropped its
      // whole connection, streams left on a black-holed one waited for the HTTP/2 keepalive, ~40 s, and 90 s
      // was exceeded once.)
      180_000,
      'every object of the owner on all R nodes',
    );
    const m = await copies(net.nodes, ownerId);
    for (const [object, holders] of m) {
      for (const h of holders) {
        const node = net.nodes.find((n: any) => n.name === h);
        expect([object, h, await intact(node.dataDir, ownerId, object)]).toEqual([object, h, true]);
      }
    }
    await readAll();
  });
});
