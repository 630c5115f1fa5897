import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { bidi, messages, serverIdFromHash, startGrpcServer, writeMessage, type RunningServer } from '@distri-vault/shared';
import { PeerServiceService, type GetFileRequest, type GetFileResponse, type PeerServiceServer } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { PeerNetwork } from '../adapters/network';
import { MemoryCrypto, MemoryStorage } from '../testing/memory-ports';
import { PeerLink } from '../adapters/peer-link';
import { dialingNetwork, newSecret, startPeerServer, testPeer } from '../testing/peer-fixtures';
import { peerServerCredentials } from '../adapters/tls';
import { Vault } from '../domain/vault';
import { rank } from '../domain/placement';
import { MAX_GET_FILE_BATCH, peerServer } from './peer.grpc';
import { Garbage } from '../domain/garbage';
import { sealGcRecords } from '../domain/garbage';
import type { Identity } from '../domain/identity';
import { ObjectKind } from '@distri-vault/shared/generated/vault/common/v1/object';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
let A = '';
let B = '';
let identities: { a: Identity; b: Identity };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('PeerService over a real server', () => {
  let srv: RunningServer;
  let storage: MemoryStorage;
  let serverNet: PeerNetwork;
  let clientNet: PeerNetwork;
  let link: PeerLink;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peer-grpc-'));
    const secret = newSecret();
    const [a, b] = await Promise.all([testPeer(join(dir, 'a'), secret), testPeer(join(dir, 'b'), secret)]);
    A = a.identity.serverId;
    B = b.identity.serverId;
    identities = { a: a.identity, b: b.identity };
    storage = new MemoryStorage();
    ({ srv, net: serverNet } = await startPeerServer(b, storage, log));
    clientNet = dialingNetwork(a, log);
    const connected = new Promise<void>((r) => (clientNet.onPeerConnected = () => r()));
    clientNet.start([serverNet.advertiseAddress]);
    await connected;
    link = (clientNet as unknown as { links: Map<string, PeerLink> }).links.get(serverNet.advertiseAddress)!;
  });
  afterAll(async () => {
    clientNet.stop();
    serverNet.stop();
    await srv.close(100);
    await rm(dir, { recursive: true, force: true });
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

  it('StoreChunk stores up to its window (4) at once and acknowledges in order, each once it and those before it are durable; past the window it reads no further', async () => {
    const put = storage.put.bind(storage);
    let running = 0;
    let most = 0;
    let started = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    storage.put = async (folder: string, kind: 'chunk' | 'manifest' | 'gc', id: string, data: Buffer) => {
      started++;
      running++;
      most = Math.max(most, running);
      try {
        if (data.subarray(0, 4).toString() === 'slow') await gate;
        return await put(folder, kind, id, data);
      } finally {
        running--;
      }
    };
    try {
      const objs = [Buffer.from('slow first'), ...Array.from({ length: 6 }, (_, i) => Buffer.from(`fast ${i} ${Date.now()}`))];
      const call = (link.client as any).storeChunk() as grpc.ClientDuplexStream<unknown, any>;
      const acks: string[] = [];
      const status = new Promise<number>((resolve) => call.on('status', (st: grpc.StatusObject) => resolve(st.code)));
      call.on('data', (m: any) => m.step?.$case === 'ack' && acks.push(m.step.value.id));
      call.on('error', () => undefined);
      call.write(open());
      for (const d of objs) call.write(obj(d));
      call.end();
      await new Promise((r) => setTimeout(r, 300));
      // The slow first object holds every acknowledgement; the three behind it within the window are stored
      // meanwhile, and the rest wait unread.
      expect([acks, started]).toEqual([[], 4]);
      expect(objs.slice(1, 4).every((d) => storage.ids(A, 'chunk').includes(sha(d)))).toBe(true);
      expect(most).toBeGreaterThanOrEqual(2); // the slow one and the ones behind it, at once
      release();
      expect(await status).toBe(grpc.status.OK);
      expect(acks).toEqual(objs.map(sha));
      for (const d of objs) expect(storage.ids(A, 'chunk')).toContain(sha(d));
    } finally {
      storage.put = put;
    }
  });

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
    ['a folder whose check characters do not match', [open(A, 'e'.repeat(32)), obj(Buffer.from('x'))], grpc.status.INVALID_ARGUMENT],
    ['a second open', [open(), open()], grpc.status.INVALID_ARGUMENT],
  ])('refuses %s on StoreChunk and stores nothing', async (_name, msgs, code) => {
    const before = storage.objects.size;
    const r = await raw('storeChunk', msgs as unknown[]);
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

  it('applies the folder owner\'s GC record over StoreChunk: deletes what it names, keeps the record, then acknowledges a named object without storing it', async () => {
    const x = Buffer.from('garbage chunk');
    const keep = Buffer.from('live chunk');
    expect((await raw('storeChunk', [open(A, B), obj(x), obj(keep)])).code).toBe(grpc.status.OK);
    expect(storage.ids(B, 'chunk')).toEqual(expect.arrayContaining([sha(x), sha(keep)]));
    const [record] = sealGcRecords(identities.b, { chunks: [sha(x)], manifests: [] });
    const r = await raw('storeChunk', [open(A, B), obj(record!.data, record!.id, ObjectKind.OBJECT_KIND_GC_RECORD)]);
    expect([r.code, r.details]).toEqual([grpc.status.OK, 'OK']);
    expect(storage.ids(B, 'gc')).toEqual([record!.id]);
    expect(storage.ids(B, 'chunk')).not.toContain(sha(x));
    expect(storage.ids(B, 'chunk')).toContain(sha(keep));
    // Pushed again by a peer that has not learnt of the record: acknowledged, never stored.
    const again = await raw('storeChunk', [open(A, B), obj(x)]);
    expect(again.code).toBe(grpc.status.OK);
    expect(again.responses.map((m) => m.step.$case === 'ack' && m.step.value.created)).toEqual([false, false]);
    expect(storage.ids(B, 'chunk')).not.toContain(sha(x));
  });

  it('refuses a GC record that is not the folder owner\'s with PERMISSION_DENIED, deleting and storing nothing', async () => {
    const x = Buffer.from('someone else\'s target');
    expect((await raw('storeChunk', [open(A, B), obj(x)])).code).toBe(grpc.status.OK);
    const gcBefore = storage.ids(B, 'gc');
    // Signed by A (the authenticated sender), offered for B's folder: only B may collect B's garbage.
    const [forged] = sealGcRecords(identities.a, { chunks: [sha(x)], manifests: [] });
    const r = await raw('storeChunk', [open(A, B), obj(forged!.data, forged!.id, ObjectKind.OBJECT_KIND_GC_RECORD)]);
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(storage.ids(B, 'chunk')).toContain(sha(x));
    expect(storage.ids(B, 'gc')).toEqual(gcBefore);
    const junk = Buffer.from('not a record');
    expect((await raw('storeChunk', [open(A, B), obj(junk, sha(junk), ObjectKind.OBJECT_KIND_GC_RECORD)])).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(storage.ids(B, 'gc')).toEqual(gcBefore);
  });

  it('refuses an old protocol version with FAILED_PRECONDITION', async () => {
    const r = await raw('handshake', [{ step: { $case: 'hello', value: { protocolVersion: 1, serverId: A, advertiseAddress: '127.0.0.1:1', knownPeers: [], publicKey: Buffer.alloc(0), nonce: Buffer.alloc(0), capabilities: [] } } }]);
    expect(r.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(r.responses).toEqual([]);
  });

  it('answers GetFile with the object or "missing"', async () => {
    const d = Buffer.from('fetch me');
    await storage.put(A, 'chunk', sha(d), d);
    expect(await link.fetch(A, 'chunk', sha(d))).toEqual(d);
    expect(await link.fetch(A, 'chunk', sha(Buffer.from('nope')))).toBeNull();
  });

  it('refuses a GetFile message asking for more than MAX_GET_FILE_BATCH objects, answering none', async () => {
    const objects = Array.from({ length: MAX_GET_FILE_BATCH + 1 }, (_, i) => ({ kind: 1, id: sha(Buffer.from(`unknown-${i}`)) }));
    const r = await raw('getFile', [{ folder: A, objects }]);
    expect([r.code, r.responses]).toEqual([grpc.status.INVALID_ARGUMENT, []]);
    const ok = await raw('getFile', [{ folder: A, objects: objects.slice(0, MAX_GET_FILE_BATCH) }]);
    expect([ok.code, ok.responses.length]).toEqual([grpc.status.OK, MAX_GET_FILE_BATCH]);
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
    const empty = await clientNet.inventory(B, serverIdFromHash(createHash('sha256').update('nobody').digest()));
    expect(empty.chunk.size + empty.manifest.size).toBe(0);
    await expect(clientNet.inventory(B, '../etc')).rejects.toMatchObject({ name: 'InvalidArgumentError' });
    // A folder name must be a server ID whose check characters match (a typo names no folder).
    await expect(clientNet.inventory(B, 'e'.repeat(32))).rejects.toMatchObject({ name: 'InvalidArgumentError', message: expect.stringMatching(/typo/) });
  });

  it('syncs with a summary: a few entries listed, the difference found exactly both ways', async () => {
    const datas = Array.from({ length: 3000 }, (_, i) => Buffer.from(`summary-object-${i}`));
    for (const d of datas) await storage.put(A, 'chunk', sha(d), d);
    const mine = new MemoryStorage();
    for (const k of storage.ids(A, 'chunk')) await mine.put(A, 'chunk', k, storage.objects.get(`${A}/chunk/${k}`)!);
    const lost = storage.ids(A, 'chunk').sort().slice(100, 103);
    for (const k of lost) mine.objects.delete(`${A}/chunk/${k}`);
    const extra = [Buffer.from('only-mine-1'), Buffer.from('only-mine-2')];
    for (const d of extra) await mine.put(A, 'chunk', sha(d), d);
    const vault = new Vault({ storage: mine, crypto: new MemoryCrypto(), peers: clientNet, log }, { serverId: A, chunkSize: 4096, replicas: 2, window: 4 });
    // On a loaded machine the heartbeats may have lapsed during the setup above: wait for the link.
    const until = Date.now() + 20_000;
    while (!clientNet.connected().includes(B) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const r = await vault.syncFrom(B, new AbortController().signal);
    expect([r.fetched, r.peerLacks, r.missing]).toEqual([3, 2, 0]);
    expect(storage.ids(A, 'chunk').length).toBeGreaterThan(5500);
    expect(r.offered).toBeLessThan(200); // 5 buckets of ~11 at most, out of 5,500+
    expect(r.coveredBuckets).toBeLessThanOrEqual(5);
    expect(lost.every((k) => mine.objects.has(`${A}/chunk/${k}`))).toBe(true);
    const again = await vault.syncFrom(B, new AbortController().signal);
    // Still different in the 2 buckets of the extra objects (the peer lacks them): those are listed again.
    expect([again.fetched, again.peerLacks, again.coveredBuckets]).toEqual([0, 2, 2]);
    expect(again.offered).toBeLessThan(60);
  });

  it('refuses a malformed summary with INVALID_ARGUMENT, before listing anything', async () => {
    const bucket = (prefix: number, digest = Buffer.alloc(32)) => ({ kind: 1, prefix, count: 1, digest });
    for (const summary of [
      { prefixBits: 99, buckets: [] },
      { prefixBits: 8, buckets: [bucket(256)] },
      { prefixBits: 8, buckets: [bucket(1, Buffer.alloc(3))] },
      { prefixBits: 8, buckets: [{ ...bucket(1), kind: 0 }] },
    ]) {
      const r = await raw('syncFolder', [{ step: { $case: 'open', value: { folder: A, summary } } }]);
      expect([r.code, r.responses]).toEqual([grpc.status.INVALID_ARGUMENT, []]);
    }
  });
});

describe('a malicious but authenticated holder over real gRPC', () => {
  let dir: string;
  let good: { srv: RunningServer; net: PeerNetwork };
  let evil: RunningServer;
  let evilNet: PeerNetwork;
  let net: PeerNetwork;
  let OWNER = '';
  let EVIL = '';
  let GOOD = '';
  const goodStore = new MemoryStorage();
  let evilAsked = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peer-evil-'));
    const secret = newSecret();
    const [owner, p1, p2] = await Promise.all([testPeer(join(dir, 'o'), secret), testPeer(join(dir, '1'), secret), testPeer(join(dir, '2'), secret)]);
    const [bad, fine] = [p1, p2];
    OWNER = owner.identity.serverId;
    EVIL = bad.identity.serverId;
    GOOD = fine.identity.serverId;
    good = await startPeerServer(fine, goodStore, log, { heartbeatMs: 1000 });
    // A member of the network (it holds the secret and its own key and authenticates like any node) that answers
    // every GetFile with garbage under the asked ID.
    evilNet = new PeerNetwork({ serverId: EVIL, heartbeatMs: 1000, window: 4, auth: bad.keys }, log);
    const evilStorage = new MemoryStorage();
    const honest = peerServer({ log, storage: evilStorage, garbage: new Garbage({ storage: evilStorage, log }), network: evilNet, window: 4, auth: bad.auth });
    const evilImpl: PeerServiceServer = {
      ...honest,
      getFile: bidi<GetFileRequest, GetFileResponse>(log, 'GetFile', async (call, signal) => {
        for await (const msg of messages<GetFileRequest>(call)) {
          for (const k of msg.objects) {
            evilAsked++;
            await writeMessage(call, { step: { $case: 'object', value: { kind: k.kind, id: k.id, data: Buffer.from('not the chunk you asked for') } } }, signal);
          }
        }
      }),
    };
    evil = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [{ name: 'vault.peer.v1.PeerService', definition: PeerServiceService, implementation: evilImpl }], credentials: peerServerCredentials(bad.tls) });
    evilNet.advertiseAddress = `127.0.0.1:${evil.port}`;
    net = dialingNetwork(owner, log, 1000);
    net.start([evilNet.advertiseAddress, good.net.advertiseAddress]);
    const until = Date.now() + 20_000;
    while (net.connected().length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  });
  afterAll(async () => {
    net.stop();
    evilNet.stop();
    good.net.stop();
    await Promise.all([good.srv.close(100), evil.close(100)]);
    await rm(dir, { recursive: true, force: true });
  });

  it('detects wrong bytes by hash, never serves or stores them, and fetches from the good holder', async () => {
    const until = Date.now() + 20_000;
    while (net.connected().length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(net.connected()).toEqual([EVIL, GOOD].sort());
    const local = new MemoryStorage();
    const vault = new Vault({ storage: local, crypto: new MemoryCrypto(), peers: net, log }, { serverId: OWNER, chunkSize: 4096, replicas: 1, window: 2, hedgeMs: 40_000 });
    const body = Buffer.alloc(16 * 4096 + 5, 7);
    await vault.upload('f', undefined, (async function* () { yield body; })(), new AbortController().signal);
    // The good holder has every object of the folder; the owner loses two chunks.
    for (const [k, d] of local.objects) {
      const [, kind, id] = k.split('/');
      await goodStore.put(OWNER, kind as 'chunk', id!, d);
    }
    // Holders are asked in each chunk's placement order: lose chunks the evil holder is asked first for.
    const lost = local.ids(OWNER, 'chunk').filter((id) => rank(id, OWNER, [EVIL, GOOD], false)[0] === EVIL).sort().slice(0, 2);
    expect(lost.length).toBeGreaterThan(0); // 16 chunks: none ranked first on EVIL has odds 1 in 65,536
    for (const id of lost) local.objects.delete(`${OWNER}/chunk/${id}`);
    const puts: Buffer[] = [];
    const put = local.put.bind(local);
    local.put = async (f, k, i, d) => (puts.push(Buffer.from(d)), put(f, k, i, d));
    const started = Date.now();
    const parts: Buffer[] = [];
    for await (const p of vault.read('f', undefined, new AbortController().signal)) parts.push(p);
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    expect(Date.now() - started).toBeLessThan(20_000); // not waiting out the 40 s hedge delay: the bad answer moved on at once
    expect(evilAsked).toBe(lost.length);
    expect(puts.map(sha).sort()).toEqual(lost);
  });
});
