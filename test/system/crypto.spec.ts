/**
 * Zero knowledge and key custody end to end: 3 real nodes + gateway on loopback. Files whose names and
 * contents carry marker strings are uploaded; nothing on the peers' disks (nor in their logs) contains a
 * marker, a name or the owner's vault key. Then the owner loses its data and key directories, keeping
 * only its identity; its vault key comes back from the printable recovery key (imported under a
 * passphrase this time), and the node restores its whole folder from its peers.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, putSeeded, request, seededSha, setBearerToken, treeContains, walk } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const MAIN = join(__dirname, '../../dist/apps/crypto-service/main.js');
const MiB = 1024 * 1024;

jest.setTimeout(180_000);

/** Runs a crypto-service offline command; resolves with its exit code and output. */
function cryptoCli(args: string[], env: Record<string, string>, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MAIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

describe('zero knowledge on peers, and restore from identity + recovery key', () => {
  let root: string;
  let net: any;
  let base: string;
  const logs: Array<[string, string]> = [];
  let node1Env: Record<string, string> = {};
  const NAME_MARKER = 'ZKNAME-4c1d8e';
  const CONTENT_MARKER = Buffer.from('ZKCONTENT-93b7a2-the-quick-brown-fox');
  const files = [
    { path: `${NAME_MARKER}/payroll-${NAME_MARKER}.csv`, size: 3 * MiB + 17, seed: 41 },
    { path: `notes/${NAME_MARKER}-diary.txt`, size: 1000, seed: 42 },
    { path: `deep/a/b/c/${NAME_MARKER}.bin`, size: MiB, seed: 43 },
  ].map((f) => ({ ...f, sha: '' }));

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-crypto-system-'));
    net = await startNetwork({
      root,
      nodes: 3,
      output: (proc: string, line: string) => logs.push([proc, line]),
      env: { LOG_LEVEL: 'debug', NODE_HEARTBEAT_MS: '500' },
      nodeEnv: (i: number) => (i === 1 ? node1Env : {}),
    });
    base = net.gatewayUrl;
    setBearerToken(net.token);
    await eventually(async () => (await request(`${base}/v1/nodes`, 'GET')).json.nodes.filter((n: any) => n.state === 'connected').length === 2, 20000, 'peers connected');
    for (const f of files) {
      f.sha = await seededSha(f.size, f.seed, CONTENT_MARKER);
      const put = await putSeeded(base, f.path, f.size, f.seed, CONTENT_MARKER);
      expect([f.path, put.status]).toEqual([f.path, 201]);
    }
  });

  afterAll(async () => {
    await net?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('leaves no marker, name or key on the peers (nor a plaintext marker or name on the owner\'s data dir)', async () => {
    const owner = net.nodes[0];
    const keyFile = JSON.parse(await readFile(join(owner.keysDir, 'vault-key.json'), 'utf8'));
    const rawKey = Buffer.from(keyFile.key, 'base64');
    const recovery = (await cryptoCli(['export-recovery-key'], { CRYPTO_KEY_DIR: owner.keysDir })).stdout.trim();
    expect(recovery).toMatch(/^DVRK1(-[A-Z2-7]{4}){14}$/);
    const needles: Array<[string, Buffer]> = [
      ['content marker', CONTENT_MARKER],
      ['name marker', Buffer.from(NAME_MARKER)],
      ...files.map((f): [string, Buffer] => [`path ${f.path}`, Buffer.from(f.path)]),
      ['vault key (raw)', rawKey],
      ['vault key (base64)', Buffer.from(keyFile.key)],
      ['vault key (hex)', Buffer.from(rawKey.toString('hex'))],
      ['recovery key', Buffer.from(recovery)],
    ];
    // The copies are really there: every peer holds as many chunks as the owner (the files have 6).
    const ownerId = (await request(`${base}/v1/node`, 'GET')).json.serverId;
    // (A put returns with W=2 copies; the third follows in the background.)
    await eventually(async () => {
      for (const node of net.nodes) if ((await walk(join(node.dataDir, ownerId, 'chunks'))).length !== 6) return false;
      return true;
    }, 20000, 'every copy');
    for (const node of net.nodes) expect([node.name, (await walk(join(node.dataDir, ownerId, 'chunks'))).length]).toEqual([node.name, 6]);
    for (const peer of net.nodes.slice(1)) {
      for (const [what, needle] of needles) expect([peer.name, what, await treeContains(peer.dir, needle)]).toEqual([peer.name, what, null]);
    }
    for (const [what, needle] of needles.slice(0, 2 + files.length)) expect([what, await treeContains(owner.dataDir, needle)]).toEqual([what, null]);
    // Peers' logs (at debug level) name no file either.
    const peerLogs = logs.filter(([proc]) => !proc.startsWith('node1/') && proc !== 'gateway').map(([, l]) => l);
    expect(peerLogs.length).toBeGreaterThan(0);
    expect(peerLogs.filter((l) => l.includes(NAME_MARKER) || l.includes(CONTENT_MARKER.toString()))).toEqual([]);
    expect(logs.filter(([, l]) => l.includes(keyFile.key) || l.includes(recovery))).toEqual([]);
  });

  it('restores a node that lost its data and keys from its identity and recovery key (imported under a passphrase)', async () => {
    const owner = net.nodes[0];
    const ownerId = (await request(`${base}/v1/node`, 'GET')).json.serverId;
    // The printable key, written down before the loss.
    const recovery = (await cryptoCli(['export-recovery-key'], { CRYPTO_KEY_DIR: owner.keysDir })).stdout.trim();
    await owner.kill();
    await rm(owner.dataDir, { recursive: true, force: true });
    await rm(owner.keysDir, { recursive: true, force: true });

    const passFile = join(root, 'node1-passphrase');
    await writeFile(passFile, 'restore me please\n', { mode: 0o600 });
    const env = { CRYPTO_KEY_DIR: owner.keysDir, CRYPTO_PASSPHRASE_FILE: passFile };
    // A mistyped recovery key is refused and writes nothing.
    const typo = await cryptoCli(['import-recovery-key'], env, recovery.slice(0, 8) + (recovery[8] === 'A' ? 'B' : 'A') + recovery.slice(9));
    expect([typo.code, typo.stderr.includes('mistyped')]).toEqual([1, true]);
    const imp = await cryptoCli(['import-recovery-key'], env, `${recovery}\n`);
    expect([imp.code, imp.stderr]).toEqual([0, '']);
    expect(imp.stdout).toContain('(passphrase-protected)');
    const keyFile = JSON.parse(await readFile(join(owner.keysDir, 'vault-key.json'), 'utf8'));
    expect(keyFile).toMatchObject({ version: 2, kdf: { name: 'scrypt', N: 131072, r: 8, p: 1 } });
    expect(keyFile.key).toBeUndefined();

    node1Env = { CRYPTO_PASSPHRASE_FILE: passFile };
    await owner.start();
    expect((await request(`${base}/v1/node`, 'GET')).json.serverId).toBe(ownerId);
    await eventually(async () => (await request(`${base}/v1/files`, 'GET')).json?.files?.length === files.length, 60000, 'files restored');
    for (const f of files) {
      const get = await request(`${base}/v1/files/${f.path}`, 'GET');
      expect([f.path, get.status, get.sha256]).toEqual([f.path, 200, f.sha]);
    }
  });
});
