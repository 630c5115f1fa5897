/**
 * Disk loss and recovery with progress, on real processes: 3 nodes and the gateway on loopback. The
 * gateway's home node is killed, its data directory wiped (identity and vault key kept) and restarted;
 * it recovers its folder from its peers on its own, progress shows through GET /v1/recover and the log,
 * and every file reads back byte-identical.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, putSeeded, request, seededSha, setBearerToken } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const MiB = 1024 * 1024;

jest.setTimeout(240_000);

describe('recovery of a wiped node (3 nodes + gateway)', () => {
  let root: string;
  let net: any;
  let base: string;
  const lines: [string, string][] = [];
  const files = [
    { path: 'r/empty.bin', size: 0, seed: 1 },
    { path: 'r/one.bin', size: 1, seed: 2 },
    { path: 'r/chunk-plus-one.bin', size: MiB + 1, seed: 3 },
    { path: 'r/deep/eight.bin', size: 8 * MiB + 3, seed: 4 },
    { path: 'r/big.bin', size: 24 * MiB, seed: 5 },
  ].map((f) => ({ ...f, sha: '' }));
  const chunks = files.reduce((n, f) => n + Math.ceil(f.size / MiB), 0);
  const connected = async () => (await request(`${base}/v1/nodes`, 'GET')).json?.nodes?.filter((n: any) => n.state === 'connected').length === 2;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-recovery-'));
    net = await startNetwork({
      root,
      nodes: 3,
      output: (name: string, line: string) => lines.push([name, line]),
      env: { LOG_LEVEL: 'info', NODE_HEARTBEAT_MS: '500', NODE_RECOVERY_LOG_MS: '200' },
    });
    base = net.gatewayUrl;
    setBearerToken(net.token);
    await eventually(connected, 20000, 'peers connected');
  });

  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  it('stores the files, and reports no recovery yet beyond the start-up one of an empty node', async () => {
    for (const f of files) {
      f.sha = await seededSha(f.size, f.seed);
      const put = await putSeeded(base, f.path, f.size, f.seed);
      expect([f.path, put.status]).toEqual([f.path, 201]);
    }
    const st = await request(`${base}/v1/recover`, 'GET');
    expect(st.status).toBe(200);
    // A fresh node has an empty folder, so it ran a (trivial) start-up recovery when its first peer connected.
    expect(['idle', 'done']).toContain(st.json.phase);
  });

  it('recovers the wiped home node on restart, with progress visible, and every file reads back identical', async () => {
    const node = net.nodes[0];
    await node.kill();
    await rm(node.dataDir, { recursive: true, force: true });
    const before = lines.length;
    await node.start();
    // Poll the status while it runs: every view is consistent, and the last is the finished run.
    const seen: any[] = [];
    const final = await eventually(
      async () => {
        const r = await request(`${base}/v1/recover`, 'GET');
        if (r.status !== 200) return null;
        seen.push(r.json);
        return r.json.run >= 1 && ['done', 'failed'].includes(r.json.phase) ? r.json : null;
      },
      120_000,
      'recovery finished',
    );
    expect(final).toMatchObject({ phase: 'done', trigger: 'startup', chunks, manifests: files.length, files: files.length, chunksMissing: 0, errors: 0 });
    expect(final.chunksChecked).toBe(chunks);
    expect(final.bytes).toBeGreaterThan(files.reduce((n, f) => n + f.size, 0));
    expect(final.peersDone).toBe(final.peersTotal);
    expect(final.peersTotal).toBeGreaterThanOrEqual(1);
    expect(final.finished).not.toBeNull();
    // Counters only grow while it runs.
    const running = seen.filter((s) => s.run === final.run);
    for (let i = 1; i < running.length; i++) expect(running[i].bytes).toBeGreaterThanOrEqual(running[i - 1].bytes);
    for (const f of files) {
      const get = await request(`${base}/v1/files/${f.path}`, 'GET');
      expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
    }
    // The log has the start and the one-line summary (and progress lines if it ran long enough for them).
    const peerLog = lines.slice(before).filter(([n]) => n === 'node1/peer').map(([, l]) => JSON.parse(l.startsWith('{') ? l : '{}'));
    expect(peerLog.some((l) => l.msg === 'recovery started' && l.trigger === 'startup')).toBe(true);
    expect(peerLog.filter((l) => l.msg === 'recovery finished')).toEqual([expect.objectContaining({ phase: 'done', chunks, manifests: files.length, files: files.length })]);
  });

  it('starts a recovery on request (202), joins the running one, and answers ?wait=true with the summary', async () => {
    await eventually(connected, 20000, 'peers back');
    const last = (await request(`${base}/v1/recover`, 'GET')).json.run;
    const start = await request(`${base}/v1/recover`, 'POST');
    expect(start.status).toBe(202);
    expect(start.json).toMatchObject({ run: last + 1, trigger: 'request', joined: false });
    const join = await request(`${base}/v1/recover`, 'POST');
    expect(join.status).toBe(202);
    // Either it joined the running one, or that one had finished already and a new one started.
    expect(join.json.joined ? join.json.run === last + 1 : join.json.run === last + 2).toBe(true);
    const done = await eventually(async () => {
      const r = (await request(`${base}/v1/recover`, 'GET')).json;
      return r.phase === 'done' ? r : null;
    }, 60_000, 'requested recovery done');
    expect(done).toMatchObject({ chunks: 0, manifests: 0, files: files.length, chunksChecked: chunks, peersDone: 2, peersTotal: 2 });
    const waited = await request(`${base}/v1/recover?wait=true`, 'POST');
    expect(waited.status).toBe(200);
    expect(waited.json).toMatchObject({ peers: 2, chunks: 0, manifests: 0, files: files.length });
  });
});
