/**
 * Disk faults (issue #8): 3 nodes (R=3, W=2), the gateway on node1 (the owner). While clients read every file
 * in a loop, chunk and manifest files are corrupted in place and deleted on the owner and on a replica (one
 * chunk damaged on both). Never a wrong byte: every GET that answers 200 has the upload's sha256, and every
 * read succeeds (an intact copy is always left somewhere). Then everything is repaired: on the owner by the
 * reads themselves, on the replica by its storage scrubber (fast here: STORAGE_SCRUB_INTERVAL_S=1) and the
 * owner's repair passes: every object back on all R nodes with bytes that hash to its name.
 */
import { randomBytes } from 'node:crypto';
import { open, rm, stat, unlink, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, seededSha, setBearerToken } from '../helpers';
import { bounded, copies, intact, type Outcome } from './faults-support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const MiB = 1024 * 1024;
const R = 3;
const BOUND_MS = 30_000;

jest.setTimeout(180_000);

describe('disk faults: corrupt and deleted objects on the owner and a replica while clients read', () => {
  let root: string;
  let net: any;
  let ownerId: string;
  const files: { path: string; size: number; seed: number; sha: string }[] = [];
  const base = () => net.gatewayUrl as string;
  const fileOf = (node: any, object: string) => {
    const [kind, id] = object.split('/') as [string, string];
    return join(node.dataDir, ownerId, kind, id.slice(0, 2), id);
  };
  /** Overwrites 32 bytes in the middle of the file (same size: only a hash check can tell). */
  const corrupt = async (path: string) => {
    const size = (await stat(path)).size;
    const fh = await open(path, 'r+');
    try {
      await fh.write(randomBytes(32), 0, 32, Math.max(0, Math.floor(size / 2) - 16));
    } finally {
      await fh.close();
    }
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-faults-disk-'));
    if (process.env['KEEP_TEST_DIRS']) console.log(`disk test data and logs: ${root}`);
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
        STORAGE_SCRUB_BYTES_PER_SEC: String(256 * MiB),
        STORAGE_SCRUB_INTERVAL_S: '1',
      },
    });
    setBearerToken(net.token);
    await eventually(async () => {
      const r = await bounded(`${base()}/v1/nodes`, 'GET', net.token, 5000);
      return r.status === 200 && JSON.parse(r.body!).nodes.filter((n: any) => n.state === 'connected').length === 2;
    }, 30_000, 'node1 connected to both peers');
    ownerId = JSON.parse((await bounded(`${base()}/v1/node`, 'GET', net.token, 5000)).body!).serverId;
    for (const [i, size] of [3 * MiB + 5, MiB, 1000, 5 * MiB - 1].entries()) {
      const f = { path: `disk/${i}.bin`, size, seed: 900 + i, sha: await seededSha(size, 900 + i) };
      const put = await bounded(`${base()}/v1/files/${f.path}`, 'PUT', net.token, BOUND_MS, { size, seed: f.seed });
      expect(put.status).toBe(201);
      files.push(f);
    }
    const objects = 4 + 4 + 1 + 1 + 5;
    await eventually(async () => {
      const m = await copies(net.nodes, ownerId);
      return m.size === objects && [...m.values()].every((hs) => hs.length === R);
    }, 30_000, 'every object on all R nodes');
  });

  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  it('never serves a wrong byte, and repairs the owner (by reads) and the replica (scrubber + repair)', async () => {
    const [node1, node2] = net.nodes;
    // Readers: every file in turn, two at a time, until told to stop.
    const reads: { path: string; outcome: Outcome; want: string }[] = [];
    let stop = false;
    const reader = async (offset: number) => {
      for (let k = offset; !stop; k++) {
        const f = files[k % files.length]!;
        reads.push({ path: f.path, want: f.sha, outcome: await bounded(`${base()}/v1/files/${f.path}`, 'GET', net.token, BOUND_MS) });
      }
    };
    const readers = [reader(0), reader(1)];
    try {
      await eventually(async () => reads.length >= 8, 30_000, 'reads flowing');
      // Pick the damage: chunks and manifests, one chunk damaged on both the owner and the replica.
      const m = await copies(net.nodes, ownerId);
      const chunks = [...m.keys()].filter((o) => o.startsWith('chunks/')).sort();
      const manifests = [...m.keys()].filter((o) => o.startsWith('manifests/')).sort();
      const onOwner = { corrupt: [chunks[0]!, chunks[1]!, manifests[0]!], deleted: [chunks[2]!, manifests[1]!] };
      const onReplica = { corrupt: [chunks[0]!, chunks[3]!, manifests[2]!], deleted: [chunks[4]!, chunks[5]!] };
      for (const o of onOwner.corrupt) await corrupt(fileOf(node1, o));
      for (const o of onOwner.deleted) await unlink(fileOf(node1, o));
      for (const o of onReplica.corrupt) await corrupt(fileOf(node2, o));
      for (const o of onReplica.deleted) await unlink(fileOf(node2, o));
      const damaged = new Set([...onOwner.corrupt, ...onOwner.deleted, ...onReplica.corrupt, ...onReplica.deleted]);
      const readsAtDamage = reads.length;

      // Repaired: every object on all R nodes, every copy intact.
      await eventually(
        async () => {
          const now = await copies(net.nodes, ownerId);
          if (now.size !== m.size || ![...now.values()].every((hs) => hs.length === R)) return false;
          for (const o of damaged) {
            for (const n of [node1, node2]) if (!(await intact(n.dataDir, ownerId, o))) return false;
          }
          return true;
        },
        90_000,
        'the damaged objects repaired on the owner and the replica',
      );
      // Reads went on through the damage and after it.
      await eventually(async () => reads.length >= readsAtDamage + 2 * files.length, 30_000, 'reads after the repair');
    } finally {
      stop = true;
      await Promise.all(readers);
    }
    // Never a wrong byte, and never a failed read: an intact copy was always within reach.
    const bad = reads.filter((r) => r.outcome.status !== 200 || r.outcome.sha256 !== r.want).map((r) => ({ path: r.path, status: r.outcome.status, error: r.outcome.error, body: r.outcome.body?.slice(0, 200) }));
    expect(bad).toEqual([]);
    // Every copy of every object is intact.
    const m = await copies(net.nodes, ownerId);
    for (const [object, holders] of m) {
      for (const h of holders) {
        const node = net.nodes.find((n: any) => n.name === h);
        expect([object, h, await intact(node.dataDir, ownerId, object)]).toEqual([object, h, true]);
      }
    }
  });
});
