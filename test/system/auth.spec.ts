/**
 * Peer authentication with real processes on loopback: two members and an outsider node that has its own
 * network secret. The outsider is refused both ways and never stores nor receives anything; a node
 * without a readable network secret, or with an identity of the old server-ID derivation, does not start.
 */
import { execFile } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base32 } from '@distri-vault/shared';
import { eventually, putSeeded, request, setBearerToken } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const PEER_MAIN = join(__dirname, '../../dist/apps/peer-node/main.js');

jest.setTimeout(180_000);

/** Runs the peer-node with `env` and resolves with its exit code and output (it must exit by itself). */
function runNode(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PEER_MAIN], { env: { PATH: process.env['PATH'] ?? '', NODE_PEER_PORT: '0', NODE_CLIENT_PORT: '0', ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: stdout + stderr }),
    );
  });
}

describe('peer authentication between processes', () => {
  let root: string;
  let net: any;
  let base: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-auth-'));
    const outsiderSecret = join(root, 'outsider.secret');
    await writeFile(outsiderSecret, randomBytes(32).toString('hex'), { mode: 0o600 });
    net = await startNetwork({
      root,
      nodes: 3,
      output: { dir: join(root, 'logs') },
      env: { LOG_LEVEL: 'info', NODE_HEARTBEAT_MS: '500', NODE_REPLICAS: '2' },
      // node3 dials node1 and node2 (its bootstrap list) with another network's secret.
      nodeEnv: (i: number) => (i === 3 ? { NODE_NETWORK_SECRET_FILE: outsiderSecret } : {}),
    });
    base = net.gatewayUrl;
    setBearerToken(net.token);
  });
  afterAll(async () => {
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  const serverIdOf = (i: number): string => JSON.parse(net.nodes[i].procs.peer.logs().split('\n').find((l: string) => l.includes('"identity ')) ?? '{}').node;
  const refusals = (i: number): string[] => net.nodes[i].procs.peer.logs().split('\n').filter((l: string) => l.includes('refused the peer: authentication failed'));

  it('the members connect; the outsider refuses them (not a member) and is never connected to anyone', async () => {
    const [m1, m2, outsider] = [serverIdOf(0), serverIdOf(1), serverIdOf(2)];
    expect([m1, m2, outsider].every((id) => /^[a-z2-7]{32}$/.test(id))).toBe(true);
    await eventually(async () => (await request(`${base}/v1/nodes`, 'GET')).json.nodes.some((n: any) => n.serverId === m2 && n.state === 'connected'), 20_000, 'the members connected');
    // The outsider checks each member's Welcome and refuses it: their membership proofs do not verify.
    await eventually(async () => refusals(2).length >= 2, 20_000, 'the outsider to refuse both members');
    for (const line of refusals(2)) expect(JSON.parse(line).err).toMatch(/not a member/);
    // The members never learn of it: it sent no Proof, so no Hello of its was ever accepted.
    const nodes = (await request(`${base}/v1/nodes`, 'GET')).json.nodes;
    expect(nodes.map((n: any) => n.serverId)).not.toContain(outsider);
    expect(nodes.filter((n: any) => n.state === 'connected').map((n: any) => n.serverId)).toEqual([m2]);
    for (const i of [0, 1]) expect(net.nodes[i].procs.peer.logs()).not.toContain(outsider);
  });

  it('a put is replicated to the member only: nothing reaches the outsider, nothing of the outsider is stored', async () => {
    const put = await putSeeded(base, 'auth/file.bin', 3 * 1024 * 1024 + 5, 42);
    expect(put.status).toBe(201);
    const folders = async (i: number) => (await readdir(net.nodes[i].dataDir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
    expect(await folders(1)).toEqual([serverIdOf(0)]);
    expect(await folders(2)).toEqual([]);
    expect(await folders(0)).not.toContain(serverIdOf(2));
  });

  it('a node without a readable network secret does not start, and says why', async () => {
    const dir = join(root, 'nosecret');
    const r = await runNode({ NODE_IDENTITY_DIR: join(dir, 'identity'), NODE_NETWORK_SECRET_FILE: join(dir, 'missing.secret') });
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/network secret .*missing\.secret is not readable/);
  });

  it('a node whose identity has the old server-ID derivation does not start, and says why', async () => {
    const dir = join(root, 'oldid', 'identity');
    await mkdir(dir, { recursive: true });
    const { privateKey } = generateKeyPairSync('ed25519');
    const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    const publicKey = Buffer.from(der.subarray(der.length - 32));
    const oldId = base32(createHash('sha256').update(publicKey).digest().subarray(0, 20));
    await writeFile(join(dir, 'identity.json'), JSON.stringify({ version: 1, serverId: oldId, publicKey: publicKey.toString('base64'), privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }) }), { mode: 0o600 });
    const r = await runNode({ NODE_IDENTITY_DIR: dir, NODE_NETWORK_SECRET_FILE: join(root, 'network.secret') });
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/written by an older build/);
  });
});
