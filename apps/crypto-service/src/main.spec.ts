import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { callUnary, createClient, DataLossError } from '@distri-vault/shared';
import { CryptoServiceClient } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { FOLDER_A, makeTempDir, removeTempDir, seededBytes } from './testing/fixtures';

const root = join(__dirname, '../../..');
const mainJs = join(root, 'dist/apps/crypto-service/main.js');

/** A running crypto-service process and every stdout line it printed. */
interface Proc {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function start(env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [mainJs], { cwd: root, env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      lines.push({ raw: l });
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exited };
}

/** Resolves with the announced port, or rejects if the process exits or 10 s pass first. */
async function listeningPort(p: Proc): Promise<number> {
  const deadline = Date.now() + 10_000;
  let exitCode: number | null | undefined;
  void p.exited.then((c) => (exitCode = c));
  while (Date.now() < deadline) {
    const line = p.lines.find((l) => l['msg'] === 'listening');
    if (line) {
      expect(line['name']).toBe('crypto');
      return line['port'] as number;
    }
    if (exitCode !== undefined) throw new Error(`crypto-service exited with ${exitCode}: ${JSON.stringify(p.lines)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('crypto-service did not announce its port within 10 s');
}

async function stop(p: Proc): Promise<number | null> {
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

describe('crypto-service process', () => {
  let dir: string;
  const running: Proc[] = [];

  beforeAll(async () => {
    await promisify(execFile)(process.execPath, ['tools/build.mjs', 'crypto-service', '--quiet'], { cwd: root });
    dir = await makeTempDir();
  }, 60_000);
  afterAll(async () => {
    for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) await stop(p);
    await removeTempDir(dir);
  });

  it('creates its key, serves on an OS-chosen port, and keeps the key across a restart', async () => {
    const env = { CRYPTO_PORT: '0', CRYPTO_KEY_DIR: join(dir, 'keys'), LOG_LEVEL: 'info' };
    const askInfo = async (port: number) => {
      const client = createClient(CryptoServiceClient, `127.0.0.1:${port}`);
      try {
        const info = await callUnary(client, client.getKeyInfo, {}, { timeoutMs: 5_000 });
        const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A }, { timeoutMs: 5_000 });
        return { info, wrappedKey, client };
      } catch (err) {
        client.close();
        throw err;
      }
    };

    const first = start(env);
    running.push(first);
    const port1 = await listeningPort(first);
    expect(port1).toBeGreaterThan(0);
    const a = await askInfo(port1);
    expect(a.info.formatVersion).toBe(1);
    expect(a.info.keyFingerprint).toMatch(/^[0-9a-f]{16}$/);
    const fileId = seededBytes('proc-file', 16);
    const context = { folder: FOLDER_A, fileId, index: 0, last: true };
    const sealed = await callUnary(a.client, a.client.sealChunk, { wrappedKey: a.wrappedKey, context, plaintext: Buffer.from('survives restarts') });
    a.client.close();
    expect(await stop(first)).toBe(0);

    const keyFile = JSON.parse(await fs.readFile(join(dir, 'keys', 'vault-key.json'), 'utf8'));
    const second = start(env);
    running.push(second);
    const port2 = await listeningPort(second);
    const b = await askInfo(port2);
    try {
      // A client nobody here wrote, through server reflection: field names as in the proto.
      const curl = await promisify(execFile)(join(root, 'node_modules/.bin/buf'), [
        'curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://127.0.0.1:${port2}/vault.crypto.v1.CryptoService/GetKeyInfo`, '-d', '{}',
      ], { timeout: 15_000 });
      expect(JSON.parse(curl.stdout)).toEqual({ keyFingerprint: a.info.keyFingerprint, formatVersion: 1, createdUnixMs: String(a.info.createdUnixMs) });
      expect(b.info.keyFingerprint).toBe(a.info.keyFingerprint);
      expect(b.info.createdUnixMs).toBe(a.info.createdUnixMs);
      const opened = await callUnary(b.client, b.client.openChunk, { wrappedKey: a.wrappedKey, context, ciphertext: sealed.ciphertext });
      expect(opened.plaintext.toString()).toBe('survives restarts');
    } finally {
      b.client.close();
    }
    expect(await stop(second)).toBe(0);

    const logs = [...first.lines, ...second.lines].map((l) => JSON.stringify(l));
    expect(logs.some((l) => l.includes('"vault key created"'))).toBe(true);
    expect(logs.some((l) => l.includes('"vault key loaded"'))).toBe(true);
    expect(logs.filter((l) => l.includes(keyFile.key))).toEqual([]);
  }, 30_000);

  it('refuses to start on a malformed key file and leaves it untouched', async () => {
    const keys = join(dir, 'broken');
    await fs.mkdir(keys, { mode: 0o700 });
    const path = join(keys, 'vault-key.json');
    await fs.writeFile(path, '{"version":1,"key":"tooshort","createdUnixMs":1}', { mode: 0o600 });
    const p = start({ CRYPTO_PORT: '0', CRYPTO_KEY_DIR: keys });
    running.push(p);
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
    const code = await p.exited;
    clearTimeout(timer);
    expect(code).toBe(1);
    const fatal = p.lines.find((l) => l['msg'] === 'failed to start');
    expect(JSON.stringify(fatal)).toContain('vault key file');
    expect(p.lines.some((l) => l['msg'] === 'listening')).toBe(false);
    expect(await fs.readFile(path, 'utf8')).toBe('{"version":1,"key":"tooshort","createdUnixMs":1}');
  }, 15_000);

  it('imports and exports recovery keys offline, and serves a passphrase-protected key', async () => {
    const golden = 'DVRK1-IBAU-EQ2E-IVDE-OSCJ-JJFU-YTKO-J5IF-CUST-KRKV-MV2Y-LFNF-WXC5-LZPT-XJTS';
    const keys = join(dir, 'imported');
    const passFile = join(dir, 'passphrase');
    await fs.writeFile(passFile, 'a long passphrase\n', { mode: 0o600 });
    const env = { PATH: process.env['PATH'] ?? '', CRYPTO_KEY_DIR: keys, CRYPTO_PASSPHRASE_FILE: passFile };
    const cli = (args: string[], input: string, extra: Record<string, string> = {}) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [mainJs, ...args], { cwd: root, env: { ...env, ...extra }, timeout: 20_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin!.end(input);
      });

    const typo = await cli(['import-recovery-key'], golden.replace('IBAU', 'IBAV'));
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain('mistyped');
    await expect(fs.stat(keys)).rejects.toMatchObject({ code: 'ENOENT' });

    const imp = await cli(['import-recovery-key'], `${golden}\n`);
    expect(imp).toMatchObject({ code: 0, stderr: '' });
    expect(imp.stdout).toBe(`imported vault key b3843b13d779dc7b into ${join(keys, 'vault-key.json')} (passphrase-protected)\n`);
    expect(await fs.readFile(join(keys, 'vault-key.json'), 'utf8')).not.toContain('QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=');
    expect(await cli(['export-recovery-key'], '')).toEqual({ code: 0, stdout: `${golden}\n`, stderr: '' });
    expect((await cli(['import-recovery-key'], golden)).stderr).toContain('already exists');

    const server = start({ ...env, CRYPTO_PORT: '0' });
    running.push(server);
    const client = createClient(CryptoServiceClient, `127.0.0.1:${await listeningPort(server)}`);
    try {
      expect((await callUnary(client, client.getKeyInfo, {}, { timeoutMs: 5_000 })).keyFingerprint).toBe('b3843b13d779dc7b');
    } finally {
      client.close();
    }
    expect(await stop(server)).toBe(0);

    await fs.writeFile(passFile, 'the wrong passphrase\n');
    const wrong = start({ ...env, CRYPTO_PORT: '0' });
    running.push(wrong);
    expect(await wrong.exited).toBe(1);
    expect(JSON.stringify(wrong.lines.find((l) => l['msg'] === 'failed to start'))).toContain('wrong passphrase for vault key file');
    const exp = await cli(['export-recovery-key'], '');
    expect(exp.code).toBe(1);
    expect(exp.stdout).toBe('');
    expect(exp.stderr).toContain('wrong passphrase');
  }, 60_000);

  it('rotates and retires vault keys offline; the restarted service seals under the new key and opens with the old', async () => {
    const keys = join(dir, 'rotating');
    const env = { PATH: process.env['PATH'] ?? '', CRYPTO_KEY_DIR: keys, CRYPTO_PORT: '0' };
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [mainJs, ...args], { cwd: root, env, timeout: 20_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    const serve = async () => {
      const p = start(env);
      running.push(p);
      const client = createClient(CryptoServiceClient, `127.0.0.1:${await listeningPort(p)}`);
      return { p, client };
    };
    const fileId = seededBytes('rotating-file', 16);
    const context = { folder: FOLDER_A, fileId, index: 0, last: true };

    const a = await serve();
    const oldFp = (await callUnary(a.client, a.client.getKeyInfo, {})).keyFingerprint;
    const { wrappedKey } = await callUnary(a.client, a.client.createDataKey, { folder: FOLDER_A });
    const sealed = await callUnary(a.client, a.client.sealChunk, { wrappedKey, context, plaintext: Buffer.from('before rotation') });
    a.client.close();
    expect(await stop(a.p)).toBe(0);

    const rot = await run(['rotate-vault-key']);
    expect(rot.code).toBe(0);
    expect(rot.stdout).toContain(`${oldFp} is kept to open older data`);
    const b = await serve();
    try {
      const newFp = (await callUnary(b.client, b.client.getKeyInfo, {})).keyFingerprint;
      expect(newFp).not.toBe(oldFp);
      expect(JSON.stringify(b.p.lines.find((l) => l['msg'] === 'vault key loaded'))).toContain(oldFp);
      expect((await callUnary(b.client, b.client.openChunk, { wrappedKey, context, ciphertext: sealed.ciphertext })).plaintext.toString()).toBe('before rotation');
    } finally {
      b.client.close();
    }
    expect(await stop(b.p)).toBe(0);

    expect((await run(['retire-vault-key', 'nothex', '--shred'])).code).toBe(1);
    // Without --shred the offline retire refuses and changes nothing (it cannot re-wrap).
    const refused = await run(['retire-vault-key', oldFp]);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/without --shred.*unreadable/)]);
    const still = await serve();
    try {
      const plain = await callUnary(still.client, still.client.openChunk, { wrappedKey, context, ciphertext: sealed.ciphertext });
      expect(plain.plaintext.length).toBeGreaterThan(0);
    } finally {
      still.client.close();
    }
    expect(await stop(still.p)).toBe(0);
    const ret = await run(['retire-vault-key', oldFp, '--shred']);
    expect([ret.code, ret.stdout.includes(`vault key ${oldFp} retired`)]).toEqual([0, true]);
    const c = await serve();
    try {
      const res = await callUnary(c.client, c.client.openChunk, { wrappedKey, context, ciphertext: sealed.ciphertext }).catch((e: unknown) => e);
      expect(res).toBeInstanceOf(DataLossError);
    } finally {
      c.client.close();
    }
    expect(await stop(c.p)).toBe(0);
  }, 60_000);

  it('Chunks: a caller that floods the stream with 300 MiB of chunks: the service handles one item at a time and its memory stays bounded', async () => {
    const dir = await makeTempDir();
    const p = start({ CRYPTO_PORT: '0', CRYPTO_KEY_DIR: dir, LOG_LEVEL: 'warn' });
    try {
      const client = createClient(CryptoServiceClient, `127.0.0.1:${await listeningPort(p)}`);
      const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
      const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'))![1]) / 1024;
      const before = rssMiB();
      const call = client.chunks();
      call.on('error', () => undefined);
      call.pause(); // answers are not read (grpc-js's client still takes them off the wire: the flood goes on)
      const plaintext = seededBytes('bp', 1024 * 1024);
      let written = 0;
      for (let i = 0; i < 300; i++) {
        const ok = call.write({ seq: i, op: { $case: 'seal', value: { wrappedKey, context: { folder: FOLDER_A, fileId: Buffer.alloc(16), index: i, last: false }, plaintext } } });
        written++;
        if (!ok && !(await Promise.race([new Promise((r) => call.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 2000))]))) break;
      }
      await new Promise((r) => setTimeout(r, 500));
      const grown = rssMiB() - before;
      call.cancel();
      client.close();
      // 300 MiB offered as fast as the transport takes them. What the service may hold: the HTTP/2 windows
      // (16 MiB each way), grpc-js's read-ahead and the answers queued for writing, never the whole stream.
      expect(written).toBeGreaterThan(32);
      expect(grown).toBeLessThan(120);
    } finally {
      await stop(p);
      await removeTempDir(dir);
    }
  }, 60_000);

  it('refuses to start on invalid configuration', async () => {
    const p = start({ CRYPTO_PORT: '70000', CRYPTO_KEY_DIR: join(dir, 'unused') });
    running.push(p);
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
    const code = await p.exited;
    clearTimeout(timer);
    expect(code).toBe(1);
    expect(JSON.stringify(p.lines)).toContain('CRYPTO_PORT');
    await expect(fs.stat(join(dir, 'unused'))).rejects.toMatchObject({ code: 'ENOENT' });
  }, 15_000);
});
