/**
 * Crypto-shredding and online rotation end to end: 3 real nodes + gateway on loopback, the real CLI.
 * Files are uploaded; one (two versions) is shredded with `distri-vault keys shred`. Its manifests and
 * chunk ciphertext, taken from a PEER's disk, opened under the owner's own crypto-service before the
 * shred, no longer open after it (DATA_LOSS), and garbage collection then deletes them, and every manifest
 * the rotation replaced, from every node's disk (a GC record signed by the owner, on every node). Live
 * files read back identical. Then the owner loses its data and keys, keeps its identity, imports the NEW
 * recovery key and gets every live file back from its peers; the old recovery key would open nothing.
 * Replay: the recovery is offered a shredded manifest put back on a peer's disk behind its back (never
 * fetched: the GC record names it), plus manifests of another folder and of another node planted in the
 * owner's folder on a peer: it fetches those (valid objects) and indexes none; the shredded file does not
 * come back.
 */
import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { callUnary, createClient } from '@distri-vault/shared';
import { CryptoServiceClient } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { StorageServiceClient } from '@distri-vault/shared/generated/vault/storage/v1/storage';
import { ObjectKind } from '@distri-vault/shared/generated/vault/common/v1/object';
import { eventually, putSeeded, request, seededSha, setBearerToken, walk } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const ROOT = join(__dirname, '../..');
const CRYPTO_MAIN = join(ROOT, 'dist/apps/crypto-service/main.js');
const CLI = join(ROOT, 'tools/distri-vault.cjs');
const MiB = 1024 * 1024;

jest.setTimeout(240_000);

function run(file: string, args: string[], env: Record<string, string>, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [file, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

/** A unary call's gRPC status code (0 = OK) and response. */
function status<Req, Res>(
  client: CryptoServiceClient,
  method: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall,
  req: Req,
): Promise<{ code: number; res?: Res }> {
  return new Promise((resolve) => {
    method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (err, res) => resolve(err ? { code: err.code } : { code: 0, res }));
  });
}

interface HeldVersion {
  manifestId: string;
  manifestBytes: Buffer;
  version: number;
  wrappedKey: Buffer;
  fileId: Buffer;
  chunks: { id: string; bytes: Buffer; index: number; last: boolean }[];
}

describe('crypto-shredding and key rotation across real processes', () => {
  let root: string;
  let net: any;
  let base: string;
  let ownerId: string;
  let crypto: CryptoServiceClient;
  const logs: Array<[string, string]> = [];
  let node1Env: Record<string, string> = {};
  /** The secret file's versions as a peer held them before the shred. */
  let shredded: HeldVersion[] = [];
  const exists = (path: string) => access(path).then(() => true, () => false);
  const SECRET = 'secret/plan.txt';
  const live = [
    { path: 'keep/a.bin', size: 2 * MiB + 5, seed: 71, sha: '' },
    { path: 'keep/b.txt', size: 1000, seed: 72, sha: '' },
  ];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-keys-system-'));
    net = await startNetwork({
      root,
      nodes: 3,
      output: (proc: string, line: string) => logs.push([proc, line]),
      env: { NODE_HEARTBEAT_MS: '500' },
      nodeEnv: (i: number) => (i === 1 ? node1Env : {}),
    });
    base = net.gatewayUrl;
    setBearerToken(net.token);
    await eventually(async () => (await request(`${base}/v1/nodes`, 'GET')).json.nodes.filter((n: any) => n.state === 'connected').length === 2, 30000, 'peers connected');
    ownerId = (await request(`${base}/v1/node`, 'GET')).json.serverId;
    crypto = createClient(CryptoServiceClient, net.nodes[0].cryptoAddress);
    for (const f of live) {
      f.sha = await seededSha(f.size, f.seed);
      expect([f.path, (await putSeeded(base, f.path, f.size, f.seed)).status]).toEqual([f.path, 201]);
    }
    expect((await putSeeded(base, SECRET, MiB + 3, 73)).status).toBe(201);
    expect((await putSeeded(base, SECRET, 5000, 74)).status).toBe(201);
  });

  afterAll(async () => {
    crypto?.close();
    await net?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const cli = (args: string[]) => run(CLI, ['--json', ...args], { DISTRI_VAULT_URL: base, DISTRI_VAULT_TOKEN: net.token });

  /** The owner's folder on a peer's disk: every manifest the owner's crypto-service opens, decoded. */
  async function heldOnPeer(peer: any): Promise<HeldVersion[]> {
    const out: HeldVersion[] = [];
    for (const file of await walk(join(peer.dataDir, ownerId, 'manifests'))) {
      const bytes = await readFile(file);
      const r = await status(crypto, crypto.openManifest, { folder: ownerId, ciphertext: bytes });
      if (r.code !== 0) continue;
      const m = JSON.parse(r.res!.plaintext.toString('utf8'));
      if (m.path !== SECRET || m.deleted) continue;
      const chunks = [];
      for (let i = 0; i < m.chunks.length; i++) {
        const id = m.chunks[i].id;
        chunks.push({ id, bytes: await readFile(join(peer.dataDir, ownerId, 'chunks', id.slice(0, 2), id)), index: i, last: i === m.chunks.length - 1 });
      }
      out.push({ manifestId: file.split('/').pop()!, manifestBytes: bytes, version: m.version, wrappedKey: Buffer.from(m.wrappedKey, 'base64'), fileId: Buffer.from(m.fileId, 'base64'), chunks });
    }
    return out.sort((a, b) => a.version - b.version);
  }

  it('shreds a file: its manifests and chunks on a peer\'s disk no longer open under the owner\'s own key; live files read back identical', async () => {
    const peer = net.nodes[1];
    // Every copy is written (W = 2 answers the put; the third copy follows in the background).
    const held = (await eventually(async () => {
      const h = await heldOnPeer(peer);
      return h.length === 2 && (await heldOnPeer(net.nodes[2])).length === 2 ? h : undefined;
    }, 30000, 'both versions of the secret file on both peers'))!;
    // Positive control: before the shred, the owner's crypto-service opens what the peer holds.
    for (const v of held) {
      for (const c of v.chunks) {
        const r = await status(crypto, crypto.openChunk, { wrappedKey: v.wrappedKey, context: { folder: ownerId, fileId: v.fileId, index: c.index, last: c.last }, ciphertext: c.bytes });
        expect([v.version, c.index, r.code]).toEqual([v.version, c.index, 0]);
      }
    }
    shredded = held;
    const keyBefore = await callUnary(crypto, crypto.getKeyInfo, {});
    const oldRecovery = (await run(CRYPTO_MAIN, ['export-recovery-key'], { CRYPTO_KEY_DIR: net.nodes[0].keysDir })).stdout.trim();

    const shred = await cli(['keys', 'shred', SECRET]);
    expect([shred.code, shred.stderr]).toEqual([0, expect.stringContaining('recovery key')]);
    const report = JSON.parse(shred.stdout);
    expect(report).toMatchObject({ path: SECRET, removed: 2, rotation: { retiredFingerprints: [keyBefore.keyFingerprint], versionsShredded: 2 } });
    // Rewritten: both live files' manifests (W copies acknowledged before the retire).
    expect(report.rotation.manifestsRewritten).toBeGreaterThanOrEqual(live.length + 1);

    const keyAfter = await callUnary(crypto, crypto.getKeyInfo, {});
    expect(keyAfter.keyFingerprint).toBe(report.rotation.fingerprint);
    expect(keyAfter.previousFingerprints).toEqual([]);
    const shown = JSON.parse((await cli(['keys', 'show'])).stdout);
    expect(shown).toMatchObject({ fingerprint: keyAfter.keyFingerprint, rotationUnfinished: false });

    // Garbage collection: the owner's GC record reaches every node, and every node deletes the shredded
    // versions' manifests and chunks and the manifests the rotation replaced.
    expect(report.rotation.garbage).toMatchObject({ manifests: report.rotation.manifestsRewritten + 2, chunks: held.reduce((n, v) => n + v.chunks.length, 0), records: 1 });
    expect(report.rotation.garbage.deleted).toBeGreaterThanOrEqual(report.rotation.garbage.manifests + report.rotation.garbage.chunks);
    const garbageFiles = held.flatMap((v) => [join(ownerId, 'manifests', v.manifestId.slice(0, 2), v.manifestId), ...v.chunks.map((c) => join(ownerId, 'chunks', c.id.slice(0, 2), c.id))]);
    await eventually(async () => {
      for (const n of net.nodes) {
        if ((await walk(join(n.dataDir, ownerId, 'gc'))).length !== 1) return false;
        for (const f of garbageFiles) if (await exists(join(n.dataDir, f))) return false;
      }
      return true;
    }, 30000, 'the GC record on every node and the shredded objects deleted everywhere');
    const info = (await request(`${base}/v1/node`, 'GET')).json;
    expect(info.garbage).toMatchObject({ records: 1, tombstones: report.rotation.garbage.manifests + report.rotation.garbage.chunks });
    // No manifest left on any disk that the owner's key does not open (replaced and shredded ones are gone).
    for (const n of net.nodes) {
      for (const file of await walk(join(n.dataDir, ownerId, 'manifests'))) {
        expect([n.name, file, (await status(crypto, crypto.openManifest, { folder: ownerId, ciphertext: await readFile(file) })).code]).toEqual([n.name, file, 0]);
      }
    }
    // And the bytes a peer held before the shred: the owner's own crypto-service opens none of them.
    for (const v of held) {
      expect([v.version, 'manifest', (await status(crypto, crypto.openManifest, { folder: ownerId, ciphertext: v.manifestBytes })).code]).toEqual([v.version, 'manifest', grpc.status.DATA_LOSS]);
      expect([v.version, 'rewrap', (await status(crypto, crypto.rewrapDataKey, { folder: ownerId, wrappedKey: v.wrappedKey })).code]).toEqual([v.version, 'rewrap', grpc.status.DATA_LOSS]);
      for (const c of v.chunks) {
        const r = await status(crypto, crypto.openChunk, { wrappedKey: v.wrappedKey, context: { folder: ownerId, fileId: v.fileId, index: c.index, last: c.last }, ciphertext: c.bytes });
        expect([v.version, c.index, r.code]).toEqual([v.version, c.index, grpc.status.DATA_LOSS]);
      }
    }
    expect((await request(`${base}/v1/files/${SECRET}`, 'GET')).status).toBe(404);
    expect((await request(`${base}/v1/versions/${SECRET}`, 'GET')).status).toBe(404);
    for (const f of live) {
      const get = await request(`${base}/v1/files/${f.path}`, 'GET');
      expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
    }
    const newRecovery = (await run(CRYPTO_MAIN, ['export-recovery-key'], { CRYPTO_KEY_DIR: net.nodes[0].keysDir })).stdout.trim();
    expect(newRecovery).toMatch(/^DVRK1(-[A-Z2-7]{4}){14}$/);
    expect(newRecovery).not.toBe(oldRecovery);
  });

  it('restores a wiped owner from its peers with its identity and the NEW recovery key', async () => {
    const owner = net.nodes[0];
    // Every replacement manifest reached every peer before the loss (a recovery reads what peers hold).
    await eventually(async () => {
      const counts = await Promise.all(net.nodes.map(async (n: any) => (await walk(join(n.dataDir, ownerId, 'manifests'))).length));
      return counts.every((c: number) => c === counts[0]);
    }, 30000, 'manifest copies on every peer');
    const recovery = (await run(CRYPTO_MAIN, ['export-recovery-key'], { CRYPTO_KEY_DIR: owner.keysDir })).stdout.trim();
    // Planted on a peer, in the owner's folder: a manifest naming a file, sealed by the owner's own
    // crypto-service for another folder (node 2's), and one sealed by node 2's crypto-service (another vault key).
    const planted = Buffer.from(JSON.stringify({ format: 1, path: 'planted.txt', version: 1, deleted: false, size: 0, sha256: '', createdUnixMs: 1, fileId: '', wrappedKey: '', chunks: [] }));
    const node2Id = (await request(`${base}/v1/nodes`, 'GET')).json.nodes.map((n: any) => n.serverId).find((id: string) => id !== ownerId);
    const crypto2 = createClient(CryptoServiceClient, net.nodes[1].cryptoAddress);
    const storage3 = createClient(StorageServiceClient, net.nodes[2].storageAddress);
    const plantedIds: string[] = [];
    try {
      for (const sealed of [await callUnary(crypto, crypto.sealManifest, { folder: node2Id, plaintext: planted }), await callUnary(crypto2, crypto2.sealManifest, { folder: node2Id, plaintext: planted })]) {
        expect((await status(crypto, crypto.openManifest, { folder: ownerId, ciphertext: sealed.ciphertext })).code).toBe(grpc.status.DATA_LOSS);
        await callUnary(storage3, storage3.putObject, { folder: ownerId, kind: ObjectKind.OBJECT_KIND_MANIFEST, id: sealed.id, data: sealed.ciphertext });
        plantedIds.push(sealed.id);
      }
    } finally {
      crypto2.close();
      storage3.close();
    }
    // Manifests on the peers that the current key does not open: only the planted ones (GC deleted the
    // superseded and shredded ones).
    let stale = 0;
    for (const file of await walk(join(net.nodes[2].dataDir, ownerId, 'manifests'))) {
      if ((await status(crypto, crypto.openManifest, { folder: ownerId, ciphertext: await readFile(file) })).code === grpc.status.DATA_LOSS) stale++;
    }
    expect(stale).toBe(2);
    // A shredded manifest put back on a peer's disk behind its node's back (a restored backup, say): the
    // recovery must not fetch it, the GC record names it.
    const storage2 = createClient(StorageServiceClient, net.nodes[1].storageAddress);
    try {
      await callUnary(storage2, storage2.putObject, { folder: ownerId, kind: ObjectKind.OBJECT_KIND_MANIFEST, id: shredded[0]!.manifestId, data: shredded[0]!.manifestBytes });
    } finally {
      storage2.close();
    }
    crypto.close();
    await owner.kill();
    await rm(owner.dataDir, { recursive: true, force: true });
    await rm(owner.keysDir, { recursive: true, force: true });
    const imp = await run(CRYPTO_MAIN, ['import-recovery-key'], { CRYPTO_KEY_DIR: owner.keysDir }, `${recovery}\n`);
    expect([imp.code, imp.stderr]).toEqual([0, '']);
    node1Env = {};
    await owner.start();
    crypto = createClient(CryptoServiceClient, owner.cryptoAddress);
    expect((await request(`${base}/v1/node`, 'GET')).json.serverId).toBe(ownerId);
    await eventually(async () => (await request(`${base}/v1/files`, 'GET')).json?.files?.length === live.length, 90000, 'live files restored');
    const st = await eventually(async () => {
      const r = (await request(`${base}/v1/recover`, 'GET')).json;
      return r && (r.phase === 'done' || r.phase === 'failed') ? r : undefined;
    }, 90000, 'recovery finished');
    expect(st).toMatchObject({ phase: 'done', errors: 0, chunksMissing: 0, files: live.length });
    expect((await request(`${base}/v1/files`, 'GET')).json.files.map((f: any) => f.path).sort()).toEqual(live.map((f) => f.path).sort());
    for (const f of live) {
      const get = await request(`${base}/v1/files/${f.path}`, 'GET');
      expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
    }
    // Replayed, not reinstated: the planted manifests were fetched onto the owner's disk, and nothing names them or the shredded file.
    const ownerManifests = (await walk(join(owner.dataDir, ownerId, 'manifests'))).map((f) => f.split('/').pop());
    for (const id of plantedIds) expect(ownerManifests).toContain(id);
    for (const v of shredded) expect(ownerManifests).not.toContain(v.manifestId);
    expect((await walk(join(owner.dataDir, ownerId, 'gc'))).length).toBe(1);
    expect((await request(`${base}/v1/versions/${SECRET}`, 'GET')).status).toBe(404);
    expect((await request(`${base}/v1/files/planted.txt`, 'GET')).status).toBe(404);
    // Superseded and shredded manifests were skipped quietly: no per-manifest warning in the node's log.
    const nodeLines = logs.filter(([proc]) => proc.startsWith('node1/')).map(([, l]) => l);
    expect(nodeLines.filter((l) => l.includes('manifest skipped'))).toEqual([]);
    const skippedCounts = nodeLines.filter((l) => l.includes('retired or unknown vault key skipped')).map((l) => JSON.parse(l).manifests as number);
    expect(Math.max(0, ...skippedCounts)).toBeGreaterThanOrEqual(stale);
  });
});
