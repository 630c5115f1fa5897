/**
 * Crash faults (issue #8): 3 nodes (R=3, W=2) and the gateway on node1. While a stream of uploads runs
 * through the gateway, one process is SIGKILLed and restarted, each kind in turn: a peer's peer-node, the
 * home node's storage-service, crypto-service and peer-node, and the gateway. Every request ends within a
 * bound; every acknowledged (201) upload reads back byte-identical; every other one failed with a clear
 * error status (or, when the gateway itself died, a broken connection) and reads back either whole or not at
 * all; after the restarts the network heals: all nodes connected and every object back at R copies on disk.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, request, setBearerToken } from '../helpers';
import { bounded, copies, intact, uploadStream, type Upload } from './faults-support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const KiB = 1024;
const MiB = 1024 * KiB;
const R = 3;
/** No client request may take longer than this, whatever is killed. */
const BOUND_MS = 30_000;
/** Statuses a failed upload may end with: unavailable, deadline, busy (no 500: that is a bug or data loss). */
const CLEAR_FAILURES = [429, 503, 504];
/**
 * A broken connection counts as a clear failure only in two known cases: the gateway itself was killed, or
 * the gateway answered 503 at once (its node unreachable) while the client was still sending the body and
 * closed the connection without reading the rest (Node's http server does no lingering close), so the
 * client's write fails with EPIPE/ECONNRESET before it reads the 503. See the report of issue #8.
 */
const BROKEN = /ECONNRESET|ECONNREFUSED|EPIPE|socket hang up|aborted/;

jest.setTimeout(240_000);

describe('crash faults: SIGKILL each kind of process during uploads', () => {
  let root: string;
  let net: any;
  let ownerId: string;
  const base = () => net.gatewayUrl as string;
  const all: { victim: string; uploads: Upload[] }[] = [];

  const connectedPeers = async (i: number): Promise<number> => {
    const r = await bounded(`${base()}/v1/nodes`, 'GET', net.token, 5000);
    if (r.status !== 200) return -1;
    const nodes = JSON.parse(r.body ?? '{}').nodes ?? [];
    return i === 0 ? nodes.filter((n: any) => n.state === 'connected').length : -1;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-faults-crash-'));
    if (process.env['KEEP_TEST_DIRS']) console.log(`crash test data and logs: ${root}`);
    net = await startNetwork({
      root,
      nodes: 3,
      output: { dir: join(root, 'logs') },
      env: {
        LOG_LEVEL: 'info',
        NODE_HEARTBEAT_MS: '300',
        NODE_REPLICAS: String(R),
        NODE_WRITE_QUORUM: '2',
        NODE_REPAIR_INTERVAL_MS: '2000',
        NODE_SYNC_INTERVAL_MS: '3000',
        NODE_SERVICE_TIMEOUT_MS: '10000',
      },
    });
    setBearerToken(net.token);
    await eventually(async () => (await connectedPeers(0)) === 2, 30_000, 'node1 connected to both peers');
    ownerId = (await request(`${base()}/v1/node`, 'GET')).json.serverId;
  });

  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  /** The process of `victim` ("node2/peer", "node1/storage", ..., "gateway") as a Proc. */
  const procOf = (victim: string) => {
    if (victim === 'gateway') return net.gateway;
    const [node, kind] = victim.split('/') as [string, string];
    return net.nodes.find((n: any) => n.name === node).procs[kind];
  };
  const restart = (victim: string) => (victim === 'gateway' ? net.startGateway() : net.nodes.find((n: any) => n.name === victim.split('/')[0]).start());

  it.each([['node2/peer'], ['node3/storage'], ['node1/storage'], ['node1/crypto'], ['node1/peer'], ['gateway']])('SIGKILL of %s mid-stream', async (victim) => {
    const stream = uploadStream({ base, token: net.token, prefix: `crash/${victim.replace('/', '-')}`, sizes: [1000, 300 * KiB, 2 * MiB + 7, 64 * KiB], concurrency: 2, boundMs: BOUND_MS, seed0: all.length * 1000 + 1 });
    try {
      await eventually(async () => stream.acked().length >= 2, 30_000, 'uploads flowing before the kill');
      const proc = procOf(victim);
      await proc.stop('SIGKILL');
      // Let the stream run into the dead process for a moment.
      await new Promise((r) => setTimeout(r, 1500));
      await restart(victim);
      const ackedAtRestart = stream.acked().length;
      await eventually(async () => stream.acked().length >= ackedAtRestart + 3, 60_000, `uploads acknowledged again after ${victim} restarted`);
    } finally {
      all.push({ victim, uploads: await stream.stop() });
    }
    const ups = all[all.length - 1]!.uploads;
    // Every request ended within the bound.
    expect(ups.filter((u) => u.outcome?.status === 'hang').map((u) => u.path)).toEqual([]);
    // Unacknowledged uploads failed clearly: an error status with a JSON error body, or (gateway killed) a broken connection.
    for (const u of ups.filter((x) => x.outcome!.status !== 201)) {
      const o = u.outcome!;
      if (o.status === 'error') {
        expect([victim, u.path, o.error]).toEqual([victim, u.path, expect.stringMatching(BROKEN)]);
      } else {
        expect([u.path, o.status, CLEAR_FAILURES.includes(o.status as number)]).toEqual([u.path, o.status, true]);
        expect(o.body).toMatch(/"message"/);
      }
    }
    // Acknowledged uploads read back byte-identical; the others whole or not at all (never partial or wrong).
    for (const u of ups) {
      const get = await bounded(`${base()}/v1/files/${u.path}`, 'GET', net.token, BOUND_MS);
      if (u.outcome!.status === 201) expect([u.path, get.status, get.sha256]).toEqual([u.path, 200, await u.sha]);
      else if (get.status === 200) expect([u.path, get.sha256]).toEqual([u.path, await u.sha]);
      else expect([u.path, get.status]).toEqual([u.path, 404]);
    }
    // The network healed: node1 is connected to both peers again.
    await eventually(async () => (await connectedPeers(0)) === 2, 30_000, 'node1 connected to both peers again');
  });

  it('heals: every object of the owner folder back at R copies, intact, on disk', async () => {
    const acked = all.flatMap((c) => c.uploads.filter((u) => u.outcome!.status === 201));
    expect(acked.length).toBeGreaterThanOrEqual(15);
    await eventually(
      async () => {
        const m = await copies(net.nodes, ownerId);
        const owner = [...m.entries()].filter(([, hs]) => hs.includes('node1'));
        return owner.length > acked.length && owner.every(([, hs]) => hs.length === R);
      },
      90_000,
      'every object the owner holds on all R nodes',
    );
    // Every copy is intact (its bytes hash to its name).
    const m = await copies(net.nodes, ownerId);
    for (const [object, holders] of m) {
      for (const h of holders) {
        const node = net.nodes.find((n: any) => n.name === h);
        expect([object, h, await intact(node.dataDir, ownerId, object)]).toEqual([object, h, true]);
      }
    }
    // And still every acknowledged file reads back.
    for (const u of acked) {
      const get = await bounded(`${base()}/v1/files/${u.path}`, 'GET', net.token, BOUND_MS);
      expect([u.path, get.status, get.sha256]).toEqual([u.path, 200, await u.sha]);
    }
  });
});
