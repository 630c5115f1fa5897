import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { MAX_CHUNK_OBJECT_BYTES, type RunningServer, callUnary, createClient, startGrpcServer } from '@distri-vault/shared';
import { ObjectKind } from '@distri-vault/shared/generated/vault/common/v1/object';
import { StorageServiceClient, type ObjectsRequest, type ObjectsResponse } from '@distri-vault/shared/generated/vault/storage/v1/storage';
import { DiskObjectStore } from '../domain/disk-object-store';
import { MemoryObjectStore } from '../domain/memory-object-store';
import { Scrubber } from '../domain/scrubber';
import { Rng, folderId, forEachLimit, makeObject, objectsWithPrefix } from '../testing/fixtures';
import { OBJECTS_STREAM_CONCURRENCY, storageServiceEntry } from './storage.grpc';

const log = pino({ level: 'silent' });
const CHUNK = ObjectKind.OBJECT_KIND_CHUNK;
const MANIFEST = ObjectKind.OBJECT_KIND_MANIFEST;
const F = folderId(1);

// The raw gRPC status of a unary call (0 on success), straight from grpc-js.
function statusOf<Req, Res>(method: (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, client: grpc.Client, req: Req): Promise<{ code: number; res?: Res; details?: string }> {
  return new Promise((resolve) => {
    method.call(client, req, (err: grpc.ServiceError | null, res: Res) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, res }));
  });
}

// Reads a ListObjects stream to its end: the batches and the final status.
function listAll(client: StorageServiceClient, req: { folder: string; kind: ObjectKind; startAfter: string }): Promise<{ code: number; batches: string[][] }> {
  return new Promise((resolve) => {
    const batches: string[][] = [];
    const call = client.listObjects(req);
    call.on('data', (msg: { ids: string[] }) => batches.push(msg.ids));
    call.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, batches }));
    call.on('end', () => resolve({ code: grpc.status.OK, batches }));
  });
}

// Runs an Objects stream: writes `reqs` (at most `inFlight` unanswered at a time), collects the answers
// by seq and the final status.
function objectsCall(client: StorageServiceClient, reqs: ObjectsRequest[], inFlight = 16): Promise<{ answers: Map<number, ObjectsResponse>; order: number[]; code: number; details: string }> {
  const call = client.objects();
  const answers = new Map<number, ObjectsResponse>();
  const order: number[] = [];
  let next = 0;
  const pump = () => {
    while (next < reqs.length && next - order.length < inFlight) call.write(reqs[next++]!);
    if (next === reqs.length) call.end();
  };
  return new Promise((resolve) => {
    call.on('data', (m: ObjectsResponse) => {
      answers.set(m.seq, m);
      order.push(m.seq);
      if (next < reqs.length) pump();
    });
    call.on('error', (err: grpc.ServiceError) => resolve({ answers, order, code: err.code, details: err.details }));
    call.on('end', () => resolve({ answers, order, code: grpc.status.OK, details: '' }));
    pump();
  });
}

describe('StorageService over gRPC', () => {
  let dir: string;
  let store: DiskObjectStore;
  let srv: RunningServer;
  let client: StorageServiceClient;
  beforeAll(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'storage-grpc-'));
    store = await DiskObjectStore.open({ log }, { dataDir: dir });
    srv = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [storageServiceEntry(store, log)] });
    client = createClient(StorageServiceClient, `127.0.0.1:${srv.port}`);
  });
  afterAll(async () => {
    client?.close();
    await srv?.close();
    await store?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('puts, gets, has, stats, lists folders and deletes', async () => {
    const o = makeObject(new Rng(1), MAX_CHUNK_OBJECT_BYTES);
    await expect(callUnary(client, client.putObject, { folder: F, kind: CHUNK, id: o.id, data: o.data })).resolves.toEqual({ created: true });
    await expect(callUnary(client, client.putObject, { folder: F, kind: CHUNK, id: o.id, data: o.data })).resolves.toEqual({ created: false });
    const got = await callUnary(client, client.getObject, { folder: F, kind: CHUNK, id: o.id });
    expect(got.data.equals(o.data)).toBe(true);
    const other = makeObject(new Rng(2), 1);
    await expect(callUnary(client, client.hasObjects, { folder: F, kind: CHUNK, ids: [other.id, o.id] })).resolves.toEqual({ present: [false, true] });
    await expect(callUnary(client, client.statFolder, { folder: F })).resolves.toEqual({ chunks: 1, chunkBytes: MAX_CHUNK_OBJECT_BYTES, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
    await expect(callUnary(client, client.listFolders, {})).resolves.toEqual({ folders: [F] });
    await expect(callUnary(client, client.deleteObject, { folder: F, kind: CHUNK, id: o.id })).resolves.toEqual({ deleted: true });
    await expect(callUnary(client, client.deleteObject, { folder: F, kind: CHUNK, id: o.id })).resolves.toEqual({ deleted: false });
  });

  it('answers INVALID_ARGUMENT for malformed requests to every RPC', async () => {
    // A folder no other test touches, so the end can check nothing was created in it.
    const H = folderId(6);
    const o = makeObject(new Rng(3), 10);
    const bad = [
      { folder: '../x', kind: CHUNK, id: o.id },
      { folder: H.toUpperCase(), kind: CHUNK, id: o.id },
      { folder: H, kind: ObjectKind.OBJECT_KIND_UNSPECIFIED, id: o.id },
      { folder: H, kind: 4 as ObjectKind, id: o.id }, // one past OBJECT_KIND_GC_RECORD
      { folder: H, kind: 7 as ObjectKind, id: o.id },
      { folder: H, kind: CHUNK, id: '..' },
      { folder: H, kind: CHUNK, id: o.id.toUpperCase() },
      { folder: H, kind: CHUNK, id: `/${o.id.slice(1)}` },
    ];
    for (const req of bad) {
      expect((await statusOf(client.putObject, client, { ...req, data: o.data })).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await statusOf(client.getObject, client, req)).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await statusOf(client.hasObjects, client, { folder: req.folder, kind: req.kind, ids: [req.id] })).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await statusOf(client.deleteObject, client, req)).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await listAll(client, { folder: req.folder, kind: req.kind, startAfter: req.id === o.id ? '' : req.id })).code).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect((await statusOf(client.statFolder, client, { folder: '..' })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await statusOf(client.statFolder, client, { folder: '' })).code).toBe(grpc.status.INVALID_ARGUMENT);
    const big = makeObject(new Rng(4), MAX_CHUNK_OBJECT_BYTES + 1);
    expect((await statusOf(client.putObject, client, { folder: H, kind: CHUNK, id: big.id, data: big.data })).code).toBe(grpc.status.INVALID_ARGUMENT);
    await expect(callUnary(client, client.putObject, { folder: H, kind: MANIFEST, id: big.id, data: big.data })).resolves.toEqual({ created: true });
    const ids = Array.from({ length: 10_001 }, (_, i) => i.toString(16).padStart(64, '0'));
    expect((await statusOf(client.hasObjects, client, { folder: H, kind: CHUNK, ids })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await statusOf(client.hasObjects, client, { folder: H, kind: CHUNK, ids: ids.slice(1) })).code).toBe(grpc.status.OK);
    await expect(fs.readdir(join(dir, H, 'chunks'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('answers NOT_FOUND for an absent object', async () => {
    const o = makeObject(new Rng(5), 10);
    expect((await statusOf(client.getObject, client, { folder: F, kind: CHUNK, id: o.id })).code).toBe(grpc.status.NOT_FOUND);
    expect((await statusOf(client.getObject, client, { folder: folderId(3), kind: MANIFEST, id: o.id })).code).toBe(grpc.status.NOT_FOUND);
  });

  it('answers DATA_LOSS for a wrong hash on put and for a corrupt object on get', async () => {
    const o = makeObject(new Rng(6), 2000);
    const wrong = makeObject(new Rng(7), 2000);
    expect((await statusOf(client.putObject, client, { folder: F, kind: CHUNK, id: wrong.id, data: o.data })).code).toBe(grpc.status.DATA_LOSS);
    await callUnary(client, client.putObject, { folder: F, kind: CHUNK, id: o.id, data: o.data });
    const path = store.objectPath(F, 'chunk', o.id);
    const bytes = await fs.readFile(path);
    bytes[0] = (bytes[0] as number) ^ 0xff;
    await fs.writeFile(path, bytes);
    expect((await statusOf(client.getObject, client, { folder: F, kind: CHUNK, id: o.id })).code).toBe(grpc.status.DATA_LOSS);
    expect((await statusOf(client.getObject, client, { folder: F, kind: CHUNK, id: o.id })).code).toBe(grpc.status.NOT_FOUND);
    expect(await fs.readdir(join(dir, '.quarantine'))).toHaveLength(1);
  });

  it('Objects: puts and gets many objects over one stream, each answer matched by seq, a bad item failing alone with the status of its unary call', async () => {
    const H = folderId(7);
    const objs = Array.from({ length: 120 }, (_, i) => makeObject(new Rng(500 + i), i % 3 === 0 ? MAX_CHUNK_OBJECT_BYTES : 1 + i * 97));
    const puts: ObjectsRequest[] = objs.map((o, i) => ({ seq: 1000 + i, op: { $case: 'put', value: { folder: H, kind: CHUNK, id: o.id, data: o.data } } }));
    const wrong = makeObject(new Rng(7), 2000);
    const big = makeObject(new Rng(4), MAX_CHUNK_OBJECT_BYTES + 1);
    const bad: Array<[ObjectsRequest, number]> = [
      [{ seq: 1, op: { $case: 'put', value: { folder: '../x', kind: CHUNK, id: wrong.id, data: wrong.data } } }, grpc.status.INVALID_ARGUMENT],
      [{ seq: 2, op: { $case: 'put', value: { folder: H, kind: CHUNK, id: `../${wrong.id.slice(3)}`, data: wrong.data } } }, grpc.status.INVALID_ARGUMENT],
      [{ seq: 3, op: { $case: 'put', value: { folder: H, kind: CHUNK, id: wrong.id, data: objs[1]!.data } } }, grpc.status.DATA_LOSS],
      [{ seq: 4, op: { $case: 'put', value: { folder: H, kind: CHUNK, id: big.id, data: big.data } } }, grpc.status.INVALID_ARGUMENT],
      [{ seq: 5, op: { $case: 'put', value: { folder: H, kind: 0 as ObjectKind, id: wrong.id, data: wrong.data } } }, grpc.status.INVALID_ARGUMENT],
      [{ seq: 6, op: { $case: 'get', value: { folder: H, kind: CHUNK, id: wrong.id } } }, grpc.status.NOT_FOUND],
      [{ seq: 7, op: { $case: 'get', value: { folder: '..', kind: CHUNK, id: wrong.id } } }, grpc.status.INVALID_ARGUMENT],
    ];
    // The bad items among the puts: each fails alone and the stream goes on.
    const mixed = [...puts];
    bad.forEach(([r], i) => mixed.splice(i * 15 + 3, 0, r));
    const put = await objectsCall(client, mixed);
    expect(put.code).toBe(grpc.status.OK);
    expect(put.answers.size).toBe(mixed.length);
    for (const [i] of objs.entries()) expect(put.answers.get(1000 + i)?.result).toEqual({ $case: 'put', value: { created: true } });
    for (const [r, code] of bad) expect([r.seq, put.answers.get(r.seq)?.result?.$case, (put.answers.get(r.seq)?.result?.value as { code?: number }).code]).toEqual([r.seq, 'error', code]);
    const again = await objectsCall(client, puts.slice(0, 5));
    for (const a of again.answers.values()) expect(a.result).toEqual({ $case: 'put', value: { created: false } });
    // Gets come back verified, each to its seq, though not necessarily in order.
    const gets = await objectsCall(client, objs.map((o, i) => ({ seq: i + 1, op: { $case: 'get', value: { folder: H, kind: CHUNK, id: o.id } } })));
    expect(gets.code).toBe(grpc.status.OK);
    for (const [i, o] of objs.entries()) {
      const r = gets.answers.get(i + 1)?.result;
      expect(r?.$case === 'get' && r.value.data.equals(o.data)).toBe(true);
    }
    // Nothing of the bad items was kept.
    await expect(callUnary(client, client.statFolder, { folder: H })).resolves.toMatchObject({ chunks: objs.length, chunkBytes: objs.reduce((n, o) => n + o.data.length, 0) });
    await expect(callUnary(client, client.hasObjects, { folder: H, kind: CHUNK, ids: [wrong.id, big.id] })).resolves.toEqual({ present: [false, false] });
  }, 60_000);

  it('Objects: a request with no operation ends the stream with INVALID_ARGUMENT once the items before it are answered', async () => {
    const o = makeObject(new Rng(800), 100);
    const r = await objectsCall(client, [{ seq: 1, op: { $case: 'put', value: { folder: F, kind: CHUNK, id: o.id, data: o.data } } }, { seq: 2 }, { seq: 3, op: { $case: 'get', value: { folder: F, kind: CHUNK, id: o.id } } }], 1);
    expect([r.code, r.details]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringContaining('without an operation')]);
    expect([...r.answers.keys()]).toEqual([1]);
    expect(r.answers.get(1)?.result?.$case).toBe('put');
  });

  it('streams ListObjects in sorted batches of at most 1,000, resumable, and nothing for an absent folder', async () => {
    const G = folderId(4);
    const objs = [...Array.from({ length: 300 }, (_, i) => makeObject(new Rng(100 + i), 8)), ...objectsWithPrefix(new Rng(9), 'a0', 1000)];
    await forEachLimit(objs, 16, (o) => callUnary(client, client.putObject, { folder: G, kind: CHUNK, id: o.id, data: o.data }));
    const ids = objs.map((o) => o.id).sort();
    const all = await listAll(client, { folder: G, kind: CHUNK, startAfter: '' });
    expect(all.code).toBe(grpc.status.OK);
    expect(all.batches.map((b) => b.length)).toEqual([1000, 300]);
    expect(all.batches.flat()).toEqual(ids);
    const rest = await listAll(client, { folder: G, kind: CHUNK, startAfter: ids[1000]! });
    expect(rest.batches.flat()).toEqual(ids.slice(1001));
    await expect(listAll(client, { folder: G, kind: MANIFEST, startAfter: '' })).resolves.toEqual({ code: grpc.status.OK, batches: [] });
    await expect(listAll(client, { folder: folderId(5), kind: CHUNK, startAfter: '' })).resolves.toEqual({ code: grpc.status.OK, batches: [] });
  }, 60_000);
});

describe('StorageService over gRPC: limits and scrub status', () => {
  let dir: string;
  let store: DiskObjectStore;
  let scrubber: Scrubber;
  let srv: RunningServer;
  let client: StorageServiceClient;
  beforeAll(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'storage-grpc-limits-'));
    store = await DiskObjectStore.open({ log }, { dataDir: dir, folderQuotaBytes: 1536 * 1024 });
    scrubber = new Scrubber({ target: store, log }, { bytesPerSecond: 0, intervalMs: 0 });
    srv = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [storageServiceEntry(store, log, scrubber)] });
    client = createClient(StorageServiceClient, `127.0.0.1:${srv.port}`);
  });
  afterAll(async () => {
    client?.close();
    await srv?.close();
    await store?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('answers RESOURCE_EXHAUSTED over the folder quota (a disk-full simulation) and keeps nothing of the rejected put', async () => {
    const a = makeObject(new Rng(40), 1024 * 1024);
    const b = makeObject(new Rng(41), 512 * 1024 + 1);
    await expect(callUnary(client, client.putObject, { folder: F, kind: CHUNK, id: a.id, data: a.data })).resolves.toEqual({ created: true });
    const res = await statusOf(client.putObject, client, { folder: F, kind: CHUNK, id: b.id, data: b.data });
    expect(res.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await expect(callUnary(client, client.hasObjects, { folder: F, kind: CHUNK, ids: [b.id] })).resolves.toEqual({ present: [false] });
    await expect(callUnary(client, client.statFolder, { folder: F })).resolves.toEqual({ chunks: 1, chunkBytes: a.data.length, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 });
    expect(await fs.readdir(join(dir, '.tmp'))).toEqual([]);
    expect(await fs.readdir(join(dir, F, 'chunks', b.id.slice(0, 2))).catch(() => [])).not.toContain(b.id);
  });

  it('reports the scrubber: disabled by default, then a pass with the corrupt and missing objects', async () => {
    const G = folderId(7);
    const bare = await statusOf(client.getScrubStatus, client, {});
    expect(bare).toMatchObject({ code: grpc.status.OK, res: { passesCompleted: 0, problems: [] } });
    const good = makeObject(new Rng(42), 3000);
    const bad = makeObject(new Rng(43), 3000);
    const gone = makeObject(new Rng(44), 3000);
    for (const o of [good, bad, gone]) await callUnary(client, client.putObject, { folder: G, kind: MANIFEST, id: o.id, data: o.data });
    await fs.truncate(store.objectPath(G, 'manifest', bad.id), 10);
    await fs.unlink(store.objectPath(G, 'manifest', gone.id));
    await scrubber.runPass();
    const st = await callUnary(client, client.getScrubStatus, {});
    expect(st.passesCompleted).toBe(1);
    expect(st.last).toMatchObject({ corrupt: 1, missing: 1 });
    expect(st.problems.map((p) => [p.folder, p.kind, p.id, p.problem])).toEqual(
      expect.arrayContaining([
        [G, MANIFEST, bad.id, 'corrupt'],
        [G, MANIFEST, gone.id, 'missing'],
      ]),
    );
    expect(st.problems).toHaveLength(2);
  });
});

describe('StorageService over gRPC: Objects holds a bounded number of items', () => {
  it(`works on at most ${OBJECTS_STREAM_CONCURRENCY} items at once and reads no further request until one of them is answered`, async () => {
    const inner = new MemoryObjectStore();
    const gates: Array<() => void> = [];
    let started = 0;
    // A store whose puts wait until the test opens them: what the service holds is what it has started.
    const store = Object.create(inner, {
      put: {
        value: async (...args: Parameters<MemoryObjectStore['put']>) => {
          started++;
          await new Promise<void>((r) => gates.push(r));
          return inner.put(...args);
        },
      },
    }) as MemoryObjectStore;
    const srv = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [storageServiceEntry(store, log)] });
    const client = createClient(StorageServiceClient, `127.0.0.1:${srv.port}`);
    try {
      const objs = Array.from({ length: 60 }, (_, i) => makeObject(new Rng(900 + i), 4096));
      // All 60 written at once (the client does not bound them).
      const done = objectsCall(client, objs.map((o, i) => ({ seq: i + 1, op: { $case: 'put', value: { folder: F, kind: CHUNK, id: o.id, data: o.data } } })), 1000);
      const settle = () => new Promise((r) => setTimeout(r, 300));
      await settle();
      expect(started).toBe(OBJECTS_STREAM_CONCURRENCY);
      gates.splice(0, 3).forEach((g) => g());
      await settle();
      expect(started).toBe(OBJECTS_STREAM_CONCURRENCY + 3);
      while (started < objs.length || gates.length) {
        gates.splice(0).forEach((g) => g());
        await new Promise((r) => setImmediate(r));
      }
      const r = await done;
      expect(r.code).toBe(grpc.status.OK);
      expect([...r.answers.values()].every((a) => a.result?.$case === 'put' && a.result.value.created)).toBe(true);
      expect(r.answers.size).toBe(objs.length);
    } finally {
      client.close();
      await srv.close();
    }
  }, 30_000);
});
