import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { callUnary, createClient } from '@distri-vault/shared';
import { ObjectKind } from '@distri-vault/shared/generated/vault/common/v1/object';
import { StorageServiceClient } from '@distri-vault/shared/generated/vault/storage/v1/storage';
import { Rng, folderId, makeFastObject, makeObject } from './testing/fixtures';

const root = join(__dirname, '../../..');
const mainJs = join(root, 'dist/apps/storage-service/main.js');

interface Running {
  child: ChildProcess;
  port: number;
  lines: Array<Record<string, unknown>>;
}

// Starts the bundled service and resolves with the port from its "listening" line.
function start(env: Record<string, string>): Promise<Running> {
  const child = spawn(process.execPath, [mainJs], { cwd: root, env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no listening line within 10 s')), 10_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        rec = { notJson: line };
      }
      lines.push(rec);
      if (rec['msg'] === 'listening') {
        clearTimeout(timer);
        resolve({ child, port: rec['port'] as number, lines });
      }
    });
    // 'close' (not 'exit') so every line of stdout has been read before the rejection.
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`exited with ${code} before listening`), { lines, code }));
    });
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

describe('storage-service process', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    await promisify(execFile)(process.execPath, ['tools/build.mjs', 'storage-service', '--quiet'], { cwd: root });
    dir = await fs.mkdtemp(join(tmpdir(), 'storage-proc-'));
  }, 60_000);
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves on port 0, keeps objects across a restart, and stops cleanly', async () => {
    const env = { STORAGE_PORT: '0', STORAGE_DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'info' };
    const F = folderId(1);
    const o = makeObject(new Rng(42), 100_000);

    const first = await start(env);
    children.push(first.child);
    expect(first.port).toBeGreaterThan(0);
    expect(first.lines.find((l) => l['msg'] === 'listening')).toMatchObject({ msg: 'listening', name: 'storage', host: '127.0.0.1', service: 'storage-service' });
    let client = createClient(StorageServiceClient, `127.0.0.1:${first.port}`);
    await expect(callUnary(client, client.putObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id: o.id, data: o.data })).resolves.toEqual({ created: true });
    expect((await callUnary(client, client.getObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id: o.id })).data.equals(o.data)).toBe(true);
    client.close();
    await expect(stop(first.child)).resolves.toBe(0);
    // A crash's leftover temp file must be gone after the restart.
    await fs.writeFile(join(dir, 'data', '.tmp', 'leftover'), 'partial');

    const second = await start(env);
    children.push(second.child);
    client = createClient(StorageServiceClient, `127.0.0.1:${second.port}`);
    expect((await callUnary(client, client.getObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id: o.id })).data.equals(o.data)).toBe(true);
    await expect(callUnary(client, client.putObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id: o.id, data: o.data })).resolves.toEqual({ created: false });
    await expect(callUnary(client, client.listFolders, {})).resolves.toEqual({ folders: [F] });
    expect(await fs.readdir(join(dir, 'data', '.tmp'))).toEqual([]);
    client.close();
    await expect(stop(second.child)).resolves.toBe(0);
    // Nothing the service logged carries the object's bytes.
    const hexSample = o.data.subarray(0, 16).toString('hex');
    expect(JSON.stringify([...first.lines, ...second.lines])).not.toContain(hexSample);
  });

  it('loses no acknowledged object and shows no partial one when SIGKILLed during many concurrent puts', async () => {
    const env = { STORAGE_PORT: '0', STORAGE_DATA_DIR: join(dir, 'crash'), LOG_LEVEL: 'info', STORAGE_SCRUB_BYTES_PER_SEC: '0' };
    const F = folderId(2);
    const acked = new Map<string, Buffer>();
    const sent = new Map<string, Buffer>();
    // Three crashes, each after a different number of acknowledgements, into the same data directory.
    for (const [round, killAfter] of [40, 150, 333].entries()) {
      const node = await start(env);
      children.push(node.child);
      const client = createClient(StorageServiceClient, `127.0.0.1:${node.port}`);
      const objs = Array.from({ length: 600 }, (_, i) => makeFastObject(`crash-${round}-${i}`, 1 + ((i * 7919) % (256 * 1024))));
      for (const o of objs) sent.set(o.id, o.data);
      let inFlightAtKill = -1;
      let inFlight = 0;
      let ackedThisRound = 0;
      let next = 0;
      const worker = async () => {
        while (next < objs.length && inFlightAtKill < 0) {
          const o = objs[next++]!;
          inFlight++;
          try {
            await callUnary(client, client.putObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id: o.id, data: o.data });
            acked.set(o.id, o.data);
            if (++ackedThisRound >= killAfter && inFlightAtKill < 0) {
              inFlightAtKill = inFlight - 1;
              node.child.kill('SIGKILL');
            }
          } catch {
            // Puts cut off by the kill fail; they were never acknowledged.
          } finally {
            inFlight--;
          }
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
      if (inFlightAtKill < 0) node.child.kill('SIGKILL');
      await new Promise((r) => (node.child.exitCode !== null || node.child.signalCode !== null ? r(null) : node.child.once('exit', r)));
      client.close();
      expect(node.child.signalCode).toBe('SIGKILL');
      expect(inFlightAtKill).toBeGreaterThan(0);
    }

    const after = await start(env);
    children.push(after.child);
    expect(after.lines.find((l) => l['msg'] === 'object store ready')).toBeDefined();
    expect(await fs.readdir(join(dir, 'crash', '.tmp'))).toEqual([]);
    const client = createClient(StorageServiceClient, `127.0.0.1:${after.port}`);
    for (const [id, data] of acked) {
      const got = await callUnary(client, client.getObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id });
      expect(got.data.equals(data)).toBe(true);
    }
    // Everything listed is whole: each listed ID was sent and reads back verified.
    const listed: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.listObjects({ folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, startAfter: '' });
      call.on('data', (m: { ids: string[] }) => listed.push(...m.ids));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    expect(listed.length).toBeGreaterThanOrEqual(acked.size);
    for (const id of listed) {
      expect(sent.has(id)).toBe(true);
      const got = await callUnary(client, client.getObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id });
      expect(got.data.equals(sent.get(id)!)).toBe(true);
    }
    const stat = await callUnary(client, client.statFolder, { folder: F });
    expect(stat.chunks).toBe(listed.length);
    expect(await fs.readdir(join(dir, 'crash', '.quarantine'))).toEqual([]);
    client.close();
    await expect(stop(after.child)).resolves.toBe(0);
  }, 120_000);

  it('Objects: a caller that floods the stream with 300 gets of a 1 MiB object and reads no answer: the service memory stays bounded', async () => {
    const env = { STORAGE_PORT: '0', STORAGE_DATA_DIR: join(dir, 'flood'), LOG_LEVEL: 'warn', STORAGE_SCRUB_BYTES_PER_SEC: '0' };
    const F = folderId(3);
    const o = makeFastObject('flood', 1024 * 1024);
    const svc = await start(env);
    children.push(svc.child);
    const client = createClient(StorageServiceClient, `127.0.0.1:${svc.port}`);
    try {
      await callUnary(client, client.putObject, { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id: o.id, data: o.data });
      const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${svc.child.pid}/status`, 'utf8'))![1]) / 1024;
      const before = rssMiB();
      const call = client.objects();
      call.on('error', () => undefined);
      call.pause(); // answers are not read
      let written = 0;
      for (let i = 0; i < 300; i++) {
        const ok = call.write({ seq: i + 1, op: { $case: 'get', value: { folder: F, kind: ObjectKind.OBJECT_KIND_CHUNK, id: o.id } } });
        written++;
        if (!ok && !(await Promise.race([new Promise((r) => call.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 2000))]))) break;
      }
      await new Promise((r) => setTimeout(r, 1000));
      const grown = rssMiB() - before;
      call.cancel();
      // 300 MiB of answers asked for: the service holds at most its 16 items in work, the HTTP/2 window
      // and grpc-js's buffers, never the whole flood.
      expect(written).toBe(300);
      expect(grown).toBeLessThan(120);
    } finally {
      client.close();
      await stop(svc.child);
    }
  }, 60_000);

  it('fails fast with a fatal log line on a bad configuration', async () => {
    const err = await start({ STORAGE_PORT: 'not-a-port', STORAGE_DATA_DIR: join(dir, 'bad') }).catch((e: { lines: Array<Record<string, unknown>>; code: number }) => e);
    expect(err).toMatchObject({ code: 1 });
    const fatal = (err as { lines: Array<Record<string, unknown>> }).lines.find((l) => l['msg'] === 'failed to start');
    expect(JSON.stringify(fatal)).toContain('STORAGE_PORT');
  });
});
