import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FakeNode, json, request, seeded } from './testing/fake-node';

const root = join(__dirname, '../../..');
const run = promisify(execFile);

// The bundled app as launchers run it: esbuild output (no decorator metadata), real process, port 0.
describe('gateway process (node dist/apps/gateway/main.js)', () => {
  let fake: FakeNode;
  let child: ChildProcessWithoutNullStreams | undefined;
  const lines: Record<string, unknown>[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'gw-main-'));

  beforeAll(async () => {
    await run(process.execPath, [join(root, 'tools/build.mjs'), 'gateway', '--quiet'], { cwd: root });
    fake = await new FakeNode().start();
  }, 60_000);
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await fake.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('announces its bound port, serves PUT and GET, and stops on SIGTERM', async () => {
    child = spawn(process.execPath, [join(root, 'dist/apps/gateway/main.js')], {
      cwd: root,
      env: { ...process.env, GATEWAY_PORT: '0', GATEWAY_HOST: '127.0.0.1', GATEWAY_NODE_ADDRESS: fake.address, GATEWAY_DATA_DIR: dataDir, LOG_LEVEL: 'info' },
    });
    const stderr: string[] = [];
    child.stderr.on('data', (d) => stderr.push(String(d)));
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line; stderr: ${stderr.join('')}`)), 15_000);
      createInterface({ input: child!.stdout }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        lines.push(entry);
        if (entry['msg'] === 'listening') {
          clearTimeout(timer);
          resolve(entry);
        }
      });
      child!.once('exit', (code) => reject(new Error(`exited with ${code}; stderr: ${stderr.join('')}`)));
    });
    expect(listening).toMatchObject({ name: 'gateway', host: '127.0.0.1', service: 'gateway' });
    const port = listening['port'] as number;
    expect(port).toBeGreaterThan(0);

    // First start: a read-write token, saved 0600 under the data dir and shown once on stderr, not in the log.
    const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
    expect(token).toMatch(/^dvt_[0-9a-f]{12}_[\w-]{43}$/);
    expect(statSync(join(dataDir, 'token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'tokens.json')).mode & 0o777).toBe(0o600);
    expect(stderr.join('')).toContain(token);
    expect(JSON.stringify(lines)).not.toContain(token);
    expect(readFileSync(join(dataDir, 'tokens.json'), 'utf8')).not.toContain(token);
    const auth = { authorization: `Bearer ${token}` };
    expect((await request(port, 'GET', '/v1/files')).status).toBe(401);

    const data = seeded(2 * 1024 * 1024 + 3, 42);
    const put = await request(port, 'PUT', '/v1/files/proc/test.bin', { body: data, headers: { 'x-request-id': 'proc-1', ...auth } });
    expect(put.status).toBe(201);
    expect(json(put)).toMatchObject({ path: 'proc/test.bin', version: 1, size: data.length });
    const get = await request(port, 'GET', '/v1/files/proc/test.bin', { headers: auth });
    expect(get.status).toBe(200);
    expect(get.body.equals(data)).toBe(true);
    expect((await request(port, 'GET', '/v1/files/%2e%2e', { headers: auth })).status).toBe(400);

    // One JSON line per request, with the route pattern and no file name.
    await new Promise((r) => setTimeout(r, 100));
    const reqLine = lines.find((l) => l['msg'] === 'request' && l['reqId'] === 'proc-1');
    expect(reqLine).toMatchObject({ method: 'PUT', status: 201, bytes: data.length });
    expect(JSON.stringify(reqLine)).not.toContain('test.bin');

    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 30_000);

  it('fails start-up naming a bad variable', async () => {
    const res = await run(process.execPath, [join(root, 'dist/apps/gateway/main.js')], {
      cwd: root,
      env: { ...process.env, GATEWAY_PORT: 'eighty', GATEWAY_NODE_ADDRESS: fake.address, GATEWAY_DATA_DIR: dataDir },
    }).catch((e: { code: number; stdout: string }) => e);
    expect((res as { code: number }).code).toBe(1);
    expect((res as { stdout: string }).stdout).toContain('GATEWAY_PORT');
  }, 15_000);
});
