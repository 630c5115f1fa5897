import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { startGrpcServer, type RunningServer } from '@distri-vault/shared';
import { PeerServiceService } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { peerServer } from './peer.grpc';
import { PeerNetwork } from '../adapters/network';
import { MemoryStorage } from '../testing/memory-ports';
import { PeerLink } from '../adapters/peer-link';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('PeerService over a real server', () => {
  let srv: RunningServer;
  let storage: MemoryStorage;
  let serverNet: PeerNetwork;
  let clientNet: PeerNetwork;
  let link: PeerLink;

  beforeAll(async () => {
    storage = new MemoryStorage();
    serverNet = new PeerNetwork({ serverId: B, heartbeatMs: 200, window: 4 }, log);
    srv = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [{ name: 'vault.peer.v1.PeerService', definition: PeerServiceService, implementation: peerServer({ log, storage, network: serverNet, window: 4 }) }] });
    serverNet.advertiseAddress = `127.0.0.1:${srv.port}`;
    clientNet = new PeerNetwork({ serverId: A, heartbeatMs: 200, window: 4 }, log);
    clientNet.advertiseAddress = '127.0.0.1:1';
    const connected = new Promise<void>((r) => (clientNet.onPeerConnected = () => r()));
    clientNet.start([serverNet.advertiseAddress]);
    await connected;
    link = (clientNet as unknown as { links: Map<string, PeerLink> }).links.get(serverNet.advertiseAddress)!;
  });
  afterAll(async () => {
    clientNet.stop();
    serverNet.stop();
    await srv.close(100);
  });

  it('handshakes and reports the peer connected', () => {
    expect(clientNet.connected()).toEqual([B]);
  });

  it('replicates objects with acknowledgements and closes cleanly', async () => {
    const session = await clientNet.openReplica(B, A);
    const objs = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000 + i, i));
    await Promise.all(objs.map((d) => session.send({ kind: 'chunk', id: sha(d), data: d })));
    await session.close();
    expect(storage.ids(A, 'chunk').sort()).toEqual(objs.map(sha).sort());
  });

  /** Runs a raw bidi call: writes `msgs`, half-closes, collects responses and the final status. */
  async function raw(method: 'storeChunk' | 'getFile' | 'syncFolder' | 'handshake', msgs: unknown[]): Promise<{ responses: any[]; code: number; details: string }> {
    const call = (link.client as any)[method]() as grpc.ClientDuplexStream<unknown, any>;
    const responses: any[] = [];
    return new Promise((resolve) => {
      call.on('data', (m) => responses.push(m));
      call.on('error', () => undefined);
      call.on('status', (st: grpc.StatusObject) => resolve({ responses, code: st.code, details: st.details }));
      for (const m of msgs) call.write(m);
      call.end();
    });
  }
  const obj = (data: Buffer, id = sha(data), kind = 1) => ({ step: { $case: 'object', value: { kind, id, data } } });
  const open = (senderId = A, folder = A) => ({ step: { $case: 'open', value: { senderId, folder } } });

  it('refuses a wrong hash with DATA_LOSS and stores nothing', async () => {
    const before = storage.objects.size;
    const r = await raw('storeChunk', [open(), obj(Buffer.from('good'), sha(Buffer.from('bad')))]);
    expect(r.code).toBe(grpc.status.DATA_LOSS);
    expect(storage.objects.size).toBe(before);
  });

  it.each([
    ['no open first', [obj(Buffer.from('x'))], grpc.status.INVALID_ARGUMENT],
    ['a traversal ID', [open(), obj(Buffer.from('x'), '../../etc/passwd')], grpc.status.INVALID_ARGUMENT],
    ['an unknown kind', [open(), obj(Buffer.from('x'), undefined, 0)], grpc.status.INVALID_ARGUMENT],
    ['a bad folder', [open('../x', '../x')], grpc.status.INVALID_ARGUMENT],
    ['a second open', [open(), open()], grpc.status.INVALID_ARGUMENT],
  ])('refuses %s on StoreChunk and stores nothing', async (_name, msgs, code) => {
    const before = storage.objects.size;
    const r = await raw('storeChunk', msgs);
    expect(r.code).toBe(code);
    expect(storage.objects.size).toBe(before);
  });

  it('stores into another member\'s folder (repair of a gone owner), still verifying the hash', async () => {
    const d = Buffer.from('repaired copy');
    const r = await raw('storeChunk', [open(A, B), obj(d)]);
    expect(r.code).toBe(grpc.status.OK);
    expect(r.responses.map((m) => m.step.$case)).toEqual(['ready', 'ack']);
    expect(storage.ids(B, 'chunk')).toEqual([sha(d)]);
    const bad = await raw('storeChunk', [open(A, B), obj(Buffer.from('x'), sha(Buffer.from('y')))]);
    expect(bad.code).toBe(grpc.status.DATA_LOSS);
    expect(storage.ids(B, 'chunk')).toEqual([sha(d)]);
  });

  it('refuses an old protocol version with FAILED_PRECONDITION', async () => {
    const r = await raw('handshake', [{ step: { $case: 'hello', value: { protocolVersion: 0, serverId: A, advertiseAddress: '127.0.0.1:1', knownPeers: [] } } }]);
    expect(r.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(r.responses).toEqual([]);
  });

  it('answers GetFile with the object or "missing"', async () => {
    const d = Buffer.from('fetch me');
    await storage.put(A, 'chunk', sha(d), d);
    expect(await link.fetch(A, 'chunk', sha(d))).toEqual(d);
    expect(await link.fetch(A, 'chunk', sha(Buffer.from('nope')))).toBeNull();
  });

  it('syncs a folder: only what the requester lacks moves', async () => {
    const datas = Array.from({ length: 2500 }, (_, i) => Buffer.from(`object-${i}`));
    for (const d of datas) await storage.put(A, 'chunk', sha(d), d);
    const mine = new MemoryStorage();
    for (const d of datas.slice(0, 1000)) await mine.put(A, 'chunk', sha(d), d);
    const r = await link.syncFolder(
      A,
      {
        missing: async (kind, ids) => {
          const has = await mine.has(A, kind, ids);
          return ids.filter((_, i) => !has[i]);
        },
        accept: async (o) => void (await mine.put(A, o.kind, o.id, o.data)),
      },
    );
    expect(r.fetched).toBe(storage.ids(A, 'chunk').length - 1000);
    expect(mine.ids(A, 'chunk').sort()).toEqual(storage.ids(A, 'chunk').sort());
  });

  it('reads a peer\'s whole inventory of a folder over SyncFolder, moving no bytes', async () => {
    const inv = await clientNet.inventory(B, A);
    expect([...inv.chunk].sort()).toEqual(storage.ids(A, 'chunk').sort());
    expect(inv.chunk.size).toBeGreaterThan(2000);
    expect([...inv.manifest]).toEqual(storage.ids(A, 'manifest'));
    const empty = await clientNet.inventory(B, 'e'.repeat(32));
    expect(empty.chunk.size + empty.manifest.size).toBe(0);
    await expect(clientNet.inventory(B, '../etc')).rejects.toMatchObject({ name: 'InvalidArgumentError' });
  });
});
