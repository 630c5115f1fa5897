import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { StorageServiceService, StorageServiceClient, type StorageServiceServer } from '../generated/vault/storage/v1/storage';
import { ObjectKind } from '../generated/vault/common/v1/object';
import { startGrpcServer, type RunningServer } from './server';
import { bidi, unary, serverStream } from './handlers';
import { callUnary, createClient } from './client';
import { NotFoundError, DataLossError, InvalidArgumentError } from '../errors';

const run = promisify(execFile);
const buf = join(__dirname, '../../../../node_modules/.bin/buf');
const log = pino({ level: 'silent' });

// A tiny StorageService whose handlers throw each kind of domain error, to prove the status mapping and
// the transport (health, reflection) of every server built with startGrpcServer.
const impl: StorageServiceServer = {
  putObject: unary(log, 'PutObject', async (req) => {
    if (req.id === 'bad') throw new InvalidArgumentError('bad id');
    if (req.id === 'corrupt') throw new DataLossError('hash mismatch');
    if (req.id === 'bug') throw new Error('secret internal detail');
    return { created: true };
  }),
  getObject: unary(log, 'GetObject', async () => {
    throw new NotFoundError('no such object');
  }),
  hasObjects: unary(log, 'HasObjects', async (req) => ({ present: req.ids.map(() => false) })),
  listObjects: serverStream(log, 'ListObjects', async (call) => {
    if (call.request.folder === 'x') throw new InvalidArgumentError('bad folder');
    call.write({ ids: ['a', 'b'] });
  }),
  deleteObject: unary(log, 'DeleteObject', async () => ({ deleted: false })),
  statFolder: unary(log, 'StatFolder', async () => ({ chunks: 2 ** 40, chunkBytes: 1, manifests: 0, manifestBytes: 0, gcRecords: 0, gcRecordBytes: 0 })),
  listFolders: unary(log, 'ListFolders', async () => ({ folders: [] })),
  getScrubStatus: unary(log, 'GetScrubStatus', async () => ({ enabled: false, bytesPerSecond: 0, passesCompleted: 0, problems: [] })),
  objects: bidi(log, 'Objects', async () => {
    throw new InvalidArgumentError('not served here');
  }),
};

describe('gRPC server glue', () => {
  let srv: RunningServer;
  let client: StorageServiceClient;
  beforeAll(async () => {
    srv = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [{ name: 'vault.storage.v1.StorageService', definition: StorageServiceService, implementation: impl }] });
    client = createClient(StorageServiceClient, `127.0.0.1:${srv.port}`);
  });
  afterAll(async () => {
    client.close();
    await srv.close();
  });

  it('binds a real port when asked for port 0', () => {
    expect(srv.port).toBeGreaterThan(0);
  });

  it('maps domain errors to statuses and hides internal causes', async () => {
    const put = (id: string) => callUnary(client, client.putObject, { folder: 'f', kind: ObjectKind.OBJECT_KIND_CHUNK, id, data: Buffer.alloc(0) });
    await expect(put('ok')).resolves.toEqual({ created: true });
    await expect(put('bad')).rejects.toMatchObject({ name: 'InvalidArgumentError', message: 'bad id' });
    await expect(put('corrupt')).rejects.toMatchObject({ name: 'DataLossError' });
    const bug = await put('bug').catch((e) => e);
    expect(bug.code).toBe('internal');
    expect(String(bug.message)).not.toContain('secret');
    await expect(callUnary(client, client.getObject, { folder: 'f', kind: 1, id: 'x' })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('carries int64 values above 2^32', async () => {
    const st = await callUnary(client, client.statFolder, { folder: 'f' });
    expect(st.chunks).toBe(2 ** 40);
  });

  it('ends a failing server stream with the mapped status', async () => {
    const call = client.listObjects({ folder: 'x', kind: 1, startAfter: '' });
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('data', () => undefined);
      call.on('error', resolve);
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('advertises the raised HTTP/2 window to clients', async () => {
    // The window the server advertises is visible as the client's remote window after a call.
    await callUnary(client, client.listFolders, {});
    const settings = await new Promise<Record<string, number>>((resolve, reject) => {
      const http2 = require('node:http2');
      const session = http2.connect(`http://127.0.0.1:${srv.port}`);
      session.on('error', reject);
      session.on('remoteSettings', (s: Record<string, number>) => {
        session.close();
        resolve(s);
      });
    });
    expect(settings['initialWindowSize']).toBe(16 * 1024 * 1024);
  });

  it('serves reflection with snake_case names and health to an external client (buf curl)', async () => {
    const addr = `http://127.0.0.1:${srv.port}`;
    const list = await run(buf, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--list-services', addr]);
    expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(['grpc.health.v1.Health', 'vault.storage.v1.StorageService']);
    const health = await run(buf, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `${addr}/grpc.health.v1.Health/Check`, '-d', '{"service":"vault.storage.v1.StorageService"}']);
    expect(JSON.parse(health.stdout)).toEqual({ status: 'SERVING' });
    const stat = await run(buf, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `${addr}/vault.storage.v1.StorageService/StatFolder`, '-d', '{"folder":"f"}']);
    expect(JSON.parse(stat.stdout)).toMatchObject({ chunks: String(2 ** 40), chunkBytes: '1' });
    const desc = await run(buf, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--list-methods', addr]);
    expect(desc.stdout).toContain('vault.storage.v1.StorageService/PutObject');
  });

  it('serves health, and only health, on the health listener, with the same statuses', async () => {
    const withHealth = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      healthAddress: '127.0.0.1:0',
      services: [{ name: 'vault.storage.v1.StorageService', definition: StorageServiceService, implementation: impl }],
    });
    try {
      expect(withHealth.healthPort).toBeGreaterThan(0);
      expect(withHealth.healthPort).not.toBe(withHealth.port);
      const addr = `http://127.0.0.1:${withHealth.healthPort}`;
      // No reflection there (the kubelet's probe needs none): the client brings the health schema.
      const schema = join(__dirname, '../../../../node_modules/grpc-health-check/proto/health/v1/health.proto');
      const check = async () => JSON.parse((await run(buf, ['curl', '--schema', schema, '--protocol', 'grpc', '--http2-prior-knowledge', `${addr}/grpc.health.v1.Health/Check`, '-d', '{"service":""}'])).stdout);
      expect(await check()).toEqual({ status: 'SERVING' });
      withHealth.health.setStatus('', 'NOT_SERVING');
      expect(await check()).toEqual({ status: 'NOT_SERVING' });
      // The API is not there (nor reflection): a probe port exposes nothing else.
      const other = await run(buf, ['curl', '--schema', join(__dirname, '../../../../proto'), '--protocol', 'grpc', '--http2-prior-knowledge', `${addr}/vault.storage.v1.StorageService/StatFolder`, '-d', '{"folder":"f"}']).then(
        () => 'answered',
        (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
      );
      expect(other).toMatch(/unimplemented/i);
    } finally {
      await withHealth.close();
    }
  });
});
