/**
 * The real command (tools/distri-vault.cjs -> dist/apps/cli/main.js) against a real local network:
 * 3 nodes + gateway started with tools/network.cjs, token read from the gateway's data dir.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { callUnary, createClient, serverIdFromHash } from '@distri-vault/shared';
import { NodeServiceClient } from '@distri-vault/shared/generated/vault/node/v1/node';
import { seededStream } from '../../../test/helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../../tools/network.cjs');
const ROOT = join(__dirname, '../../..');
const CLI = join(ROOT, 'tools/distri-vault.cjs');
const MiB = 1024 * 1024;

// A project's testTimeout is not applied under the root config's `projects`: set it here.
jest.setTimeout(120_000);

async function sha(file: string): Promise<string> {
  const h = createHash('sha256');
  h.update(await readFile(file));
  return h.digest('hex');
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('distri-vault CLI against a local network', () => {
  let root: string;
  let net: any;
  let env: NodeJS.ProcessEnv;
  let node2: NodeServiceClient | undefined;

  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}, stdin?: Buffer): Promise<Result> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: root, env: { ...env, ...extraEnv } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(stdin);
    });
  const json = async (args: string[], extraEnv?: NodeJS.ProcessEnv) => {
    const r = await cli(['--json', ...args], extraEnv);
    if (r.code !== 0) throw new Error(`distri-vault ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    await promisify(execFile)(process.execPath, [join(ROOT, 'tools/build.mjs'), '--quiet'], { cwd: ROOT });
    root = await mkdtemp(join(tmpdir(), 'dv-cli-'));
    net = await startNetwork({ root, nodes: 3, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'warn', NODE_HEARTBEAT_MS: '500', NODE_REPAIR_INTERVAL_MS: '1000' } });
    // No flags: the URL from the environment, the token from the gateway's token file.
    env = { ...process.env, DISTRI_VAULT_URL: net.gatewayUrl, DISTRI_VAULT_TOKEN_FILE: join(root, 'gateway/token'), DISTRI_VAULT_TOKEN: '' };
    const until = Date.now() + 20_000;
    for (;;) {
      const s = await cli(['--json', 'status']);
      if (s.code === 0 && JSON.parse(s.stdout).writable) break;
      if (Date.now() > until) throw new Error(`network not writable: ${s.stdout} ${s.stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 120_000);

  afterAll(async () => {
    node2?.close();
    await net?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('puts and gets a 24 MiB file byte for byte, lists it, and reports JSON', async () => {
    const src = join(root, 'big.bin');
    await pipeline(seededStream(24 * MiB + 7, 4242), createWriteStream(src));
    const put = await json(['put', src, 'cli/big file.bin']);
    expect(put).toMatchObject({ path: 'cli/big file.bin', version: 1, size: 24 * MiB + 7, sha256: await sha(src) });

    const dest = join(root, 'back.bin');
    const got = await json(['get', 'cli/big file.bin', dest]);
    expect(got).toMatchObject({ path: 'cli/big file.bin', version: 1, size: 24 * MiB + 7, file: dest });
    expect(await sha(dest)).toBe(put.sha256);

    const ls = await json(['ls', 'cli/']);
    expect(ls.map((f: { path: string }) => f.path)).toEqual(['cli/big file.bin']);
    // Human output: a table, no progress bar (stderr is not a terminal).
    const text = await cli(['ls', 'cli/']);
    expect([text.code, text.stderr]).toEqual([0, '']);
    expect(text.stdout).toMatch(/^VERSION\s+SIZE\s+UPDATED\s+PATH\n1\s+24\.0 MiB\s+\S+\s+cli\/big file\.bin\n$/);
  });

  it('keeps versions and restores an old one; stdin and stdout work', async () => {
    expect((await cli(['put', '-', 'cli/notes.txt'], {}, Buffer.from('first draft'))).code).toBe(0);
    expect((await cli(['put', '-', 'cli/notes.txt'], {}, Buffer.from('second draft'))).code).toBe(0);
    const versions = await json(['versions', 'cli/notes.txt']);
    expect(versions.map((v: { version: number; size: number }) => [v.version, v.size])).toEqual([[1, 11], [2, 12]]);
    expect(await json(['restore', 'cli/notes.txt', '1'])).toMatchObject({ version: 3, size: 11 });
    const cat = await cli(['get', 'cli/notes.txt', '-']);
    expect([cat.code, cat.stdout]).toEqual([0, 'first draft']);
    const old = await cli(['get', '--version', '2', 'cli/notes.txt', '-']);
    expect(old.stdout).toBe('second draft');
    expect((await json(['rm', 'cli/notes.txt'])).deleted).toBe(true);
    expect((await json(['versions', 'cli/notes.txt'])).at(-1)).toMatchObject({ version: 4, deleted: true });
  });

  it('shows nodes and status', async () => {
    const nodes = await json(['nodes']);
    expect(nodes.map((n: { state: string }) => n.state).sort()).toEqual(['connected', 'connected', 'self']);
    expect(await json(['status'])).toMatchObject({ replicas: 3, connected: 2, writable: true });
  });

  it('send (alias of message send) delivers to one member or to all, and list shows it', async () => {
    const nodes: { serverId: string; state: string }[] = await json(['nodes']);
    const peers = nodes.filter((n) => n.state === 'connected').map((n) => n.serverId);
    const second: string = (await json(['nodes'])).find((n: { address: string }) => n.address === net.nodes[1].peerAddress)?.serverId;
    expect(peers).toContain(second);
    const direct = await json(['send', '--to', second, 'cli/send', 'hello one']);
    expect(direct).toEqual({ id: expect.stringMatching(/^[0-9a-f]{32}$/), recipients: [second] });
    const all = await json(['send', 'cli/send', 'hello all']);
    expect(all.recipients.sort()).toEqual(peers.sort());
    // The member received both, over its control stream (asked on its own NodeService).
    node2 = createClient(NodeServiceClient, net.nodes[1].clientAddress);
    const c = node2;
    const received = async () => (await callUnary(c, c.listMessages, { sinceUnixMs: 0, topic: 'cli/send', afterId: '' }, { timeoutMs: 5000, what: 'ListMessages' })).messages;
    const until = Date.now() + 15_000;
    while ((await received()).length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    const got = await received();
    expect(got.map((m) => [m.id, Buffer.from(m.body).toString()])).toEqual([[direct.id, 'hello one'], [all.id, 'hello all']]);
    expect((await json(['message', 'list', '--topic', 'cli/send'])).map((m: { id: string; body: string }) => [m.id, m.body])).toEqual([
      [direct.id, 'hello one'],
      [all.id, 'hello all'],
    ]);
    // Human output, and the errors: unknown member 3, malformed topic 2 (refused by the node: 400).
    const text = await cli(['send', '--to', second, 'cli/send', 'again']);
    expect([text.code, text.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^sent [0-9a-f]{32} to 1 node: ${second}\n$`))]);
    expect((await cli(['send', '--to', serverIdFromHash(randomBytes(32)), 'cli/send', 'x'])).code).toBe(3);
    expect((await cli(['send', '--to', 'A'.repeat(32), 'cli/send', 'x'])).code).toBe(2);
    expect((await cli(['send', 'bad topic!', 'x'])).code).toBe(2);
    expect((await cli(['send', 'only-topic'])).code).toBe(2);
    expect((await cli(['--help'])).stdout).toMatch(/^\s+send \[options\] <topic> <text>/m);
  });

  it('status shows per-folder replication health from the last repair pass', async () => {
    type Rep = { pass: { finished: string; durationMs: number } | null; totals: { objects: number; underReplicated: number; soleCopy: number }; folders: { folder: string; own: boolean; objects: number; underReplicated: number; soleCopy: number }[] };
    const t0 = Date.now();
    const until = t0 + 30_000;
    let s: { serverId: string; replication: Rep };
    // Files were put above; wait for a pass that started after them (passes run every second here).
    const startedAfter = (p: Rep['pass'], t: number) => p !== null && Date.parse(p.finished) - p.durationMs > t;
    do {
      s = await json(['status']);
      if (startedAfter(s.replication.pass, t0)) break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < until);
    const own = s.replication.folders.find((f) => f.own)!;
    expect(own).toMatchObject({ folder: s.serverId, underReplicated: 0, soleCopy: 0 });
    expect(own.objects).toBeGreaterThan(24); // the 24 MiB file alone is 25 chunks and a manifest
    expect(s.replication.totals.underReplicated).toBe(0);
    const text = await cli(['status']);
    expect(text.stdout).toMatch(/^replication\s+0 of \d+ objects below 3 copies, 0 sole copies \(pass at /m);
    expect(text.stdout).toMatch(/^FOLDER\s+OBJECTS\s+BELOW R\s+SOLE COPY\n/m);
    // The same figures as Prometheus gauges, fetched from the node on the scrape.
    const m = await fetch(`${net.gatewayUrl}/metrics`, { headers: { authorization: `Bearer ${net.token}` } });
    const metrics = await m.text();
    expect(m.status).toBe(200);
    expect(metrics).toContain('vault_node_up 1\n');
    expect(metrics).toContain(`vault_node_under_replicated_objects{node="${s.serverId}",folder="${s.serverId}"} 0\n`);
    expect(metrics).toMatch(new RegExp(`^vault_node_folder_objects\\{node="${s.serverId}",folder="${s.serverId}"\\} [1-9]\\d*$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^vault_node_replication_backlog_objects\\{node="${s.serverId}"\\} \\d+$`, 'm'));
  });

  it('starts a recovery, and follows one to its end with --watch', async () => {
    const started = await json(['recover']);
    expect(started).toMatchObject({ trigger: 'request', joined: false });
    expect(started.run).toBeGreaterThanOrEqual(1);
    const watched = await json(['recover', '--watch', '--interval', '100']);
    expect(watched).toMatchObject({ phase: 'done', errors: 0, chunksMissing: 0, peersTotal: 2 });
    expect(watched.run).toBeGreaterThanOrEqual(started.run);
    // Human output off a terminal: progress lines on stderr, the summary on stdout.
    const text = await cli(['recover', '--watch', '--interval', '100']);
    expect(text.code).toBe(0);
    expect(text.stderr).toMatch(/^(syncing|indexing|verifying|done) peers \d\/2 /m);
    expect(text.stdout).toMatch(/^recovery #\d+ done: 2\/2 peers, 0 chunks and 0 manifests fetched/);
  });

  it('creates a read-only token, which reads but may not write, and revokes it', async () => {
    const t = await json(['token', 'create', 'reader', '--read-only']);
    expect(t).toMatchObject({ name: 'reader', scope: 'read', token: expect.stringMatching(/^dvt_/) });
    expect((await json(['token', 'list'])).map((x: { id: string }) => x.id)).toContain(t.id);
    const ro = { DISTRI_VAULT_TOKEN: t.token };
    expect((await cli(['ls'], ro)).code).toBe(0);
    const put = await cli(['put', '-', 'cli/ro.txt'], ro, Buffer.from('x'));
    expect([put.code, put.stderr]).toEqual([4, 'distri-vault: this token is read-only\n']);
    expect((await json(['token', 'revoke', t.id])).revoked).toBe(true);
    expect((await cli(['ls'], ro)).code).toBe(4);
  });

  it('exits non-zero with a clear message: 3 not found, 4 bad token, 5 unreachable, 2 usage', async () => {
    const missing = await cli(['--json', 'get', 'cli/none.bin', join(root, 'none.bin')]);
    expect(missing.code).toBe(3);
    expect(JSON.parse(missing.stderr)).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    await expect(stat(join(root, 'none.bin.part'))).rejects.toThrow();
    await expect(stat(join(root, 'none.bin'))).rejects.toThrow();

    const denied = await cli(['ls'], { DISTRI_VAULT_TOKEN: 'dvt_000000000000_' + 'x'.repeat(43) });
    expect([denied.code, denied.stderr]).toEqual([4, 'distri-vault: unknown or revoked token\n']);
    const flagWins = await cli(['--token', 'nope', 'ls']);
    expect(flagWins.code).toBe(4);

    const down = await cli(['--url', 'http://127.0.0.1:9', 'ls']);
    expect(down.code).toBe(5);
    expect(down.stderr).toContain('cannot reach the gateway');

    expect((await cli(['restore', 'cli/x', 'zero'])).code).toBe(2);
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['put', join(root, 'absent.bin')])).code).toBe(2);
  });

  // Last: it stops a node.
  it('status reports objects below R copies once a holder is unreachable', async () => {
    await net.nodes[2].kill();
    const until = Date.now() + 60_000;
    let s: { serverId: string; replication: { pass: { finished: string; durationMs: number }; totals: { objects: number; underReplicated: number; soleCopy: number }; folders: { own: boolean; objects: number; underReplicated: number; soleCopy: number }[] } };
    const killed = Date.now();
    do {
      s = await json(['status']);
      if (Date.parse(s.replication.pass.finished) - s.replication.pass.durationMs > killed + 200) break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < until);
    // R = 3 on 3 nodes: every object of the own folder was on all three; with one gone (within the repair
    // grace period) each has 2 reachable copies.
    const own = s.replication.folders.find((f) => f.own)!;
    expect(own.underReplicated).toBe(own.objects);
    expect(own.soleCopy).toBe(0);
    const text = await cli(['status']);
    expect(text.stdout).toMatch(new RegExp(`^replication\\s+${s.replication.totals.underReplicated} of ${s.replication.totals.objects} objects below 3 copies`, 'm'));
  });
});
