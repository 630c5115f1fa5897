/**
 * StoreChunk resumption over real gRPC servers: when the stream breaks mid-transfer (the receiving peer
 * restarts, or its disk blips), the sender reopens it and resends only what was not acknowledged.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startGrpcServer, UnavailableError, type RunningServer } from '@distri-vault/shared';
import { PeerServiceService } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { peerServer } from './peer.grpc';
import { PeerNetwork } from '../adapters/network';
import { MemoryStorage } from '../testing/memory-ports';
import type { ObjectKind } from '../domain/ports';
import { peerServerCredentials } from '../adapters/tls';
import { dialingNetwork, newSecret, testPeer, type TestPeer } from '../testing/peer-fixtures';
import { Garbage } from '../domain/garbage';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
let A = '';
let B = '';
let dir = '';
let a: TestPeer;
let b: TestPeer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'store-resume-'));
  const secret = newSecret();
  [a, b] = await Promise.all([testPeer(join(dir, 'a'), secret), testPeer(join(dir, 'b'), secret)]);
  A = a.identity.serverId;
  B = b.identity.serverId;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A receiver's store that records every put and can run a hook before one. */
class RecordingStorage extends MemoryStorage {
  readonly puts: string[] = [];
  beforePut: (n: number, id: string) => Promise<void> = async () => undefined;
  override async put(folder: string, kind: ObjectKind, id: string, data: Buffer): Promise<boolean> {
    this.puts.push(id);
    await this.beforePut(this.puts.length, id);
    return super.put(folder, kind, id, data);
  }
}

async function waitFor(cond: () => boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('StoreChunk resume', () => {
  let storage: RecordingStorage;
  let serverNet: PeerNetwork;
  let clientNet: PeerNetwork;
  let srv: RunningServer;
  let port = 0;

  const start = async () => {
    srv = await startGrpcServer({ host: '127.0.0.1', port, log, services: [{ name: 'vault.peer.v1.PeerService', definition: PeerServiceService, implementation: peerServer({ log, storage, garbage: new Garbage({ storage, log }), network: serverNet, window: 4, auth: b.auth }) }], credentials: peerServerCredentials(b.tls) });
    port = srv.port;
  };

  beforeEach(async () => {
    storage = new RecordingStorage();
    port = 0;
    serverNet = new PeerNetwork({ serverId: B, heartbeatMs: 200, window: 4, auth: b.keys }, log);
    await start();
    serverNet.advertiseAddress = `127.0.0.1:${port}`;
    clientNet = dialingNetwork(a, log);
    clientNet.start([serverNet.advertiseAddress]);
    await waitFor(() => clientNet.connected().includes(B));
  });
  afterEach(async () => {
    clientNet.stop();
    serverNet.stop();
    await srv.close(100);
  });

  /** Sends `n` objects through one session; returns them and the IDs in the order they were acknowledged. */
  async function sendAll(n: number) {
    const objs = Array.from({ length: n }, (_, i) => Buffer.alloc(20_000 + i, i));
    const acked = new Set<string>();
    const resentAfterAck: string[] = [];
    const inner = storage.beforePut;
    storage.beforePut = async (k, id) => {
      if (acked.has(id)) resentAfterAck.push(id);
      await inner(k, id);
    };
    const session = await clientNet.openReplica(B, A);
    await Promise.all(objs.map((d) => session.send({ kind: 'chunk', id: sha(d), data: d }).then(() => void acked.add(sha(d)))));
    await session.close();
    return { objs, acked, resentAfterAck, streams: (session as unknown as { streams: number }).streams };
  }

  it('resumes after the receiving peer restarts mid-transfer, resending only unacknowledged objects', async () => {
    let restarted = false;
    storage.beforePut = async (n) => {
      if (n !== 12 || restarted) return;
      restarted = true;
      // The peer goes away with this object (and those behind it) unacknowledged, and comes back.
      void (async () => {
        await srv.close(0);
        await new Promise((r) => setTimeout(r, 300));
        await start();
      })();
      await new Promise((r) => setTimeout(r, 50));
      throw new UnavailableError('shutting down');
    };
    const r = await sendAll(40);
    expect(restarted).toBe(true);
    expect(r.acked.size).toBe(40);
    expect(r.resentAfterAck).toEqual([]);
    expect(r.streams).toBeGreaterThanOrEqual(2);
    expect(storage.ids(A, 'chunk').sort()).toEqual(r.objs.map(sha).sort());
    // Only the objects in flight at the break (at most the window of 4) were received twice.
    expect(storage.puts.length - 40).toBeGreaterThanOrEqual(1);
    expect(storage.puts.length - 40).toBeLessThanOrEqual(4);
  });

  it('resumes after a failed store on the peer (a disk blip), resending only unacknowledged objects', async () => {
    let blips = 0;
    storage.beforePut = async (n) => {
      if (n === 7 || n === 20) {
        blips++;
        throw new UnavailableError('disk blip');
      }
    };
    const r = await sendAll(30);
    expect(blips).toBe(2);
    expect(r.resentAfterAck).toEqual([]);
    expect(r.streams).toBe(3);
    expect(storage.ids(A, 'chunk').sort()).toEqual(r.objs.map(sha).sort());
    expect(storage.puts.length).toBeLessThanOrEqual(30 + 2 * 4);
  });

  it('fails (no endless retry) when the peer keeps refusing, and never on a hash mismatch', async () => {
    storage.beforePut = async () => {
      throw new UnavailableError('disk gone');
    };
    const session = await clientNet.openReplica(B, A);
    const d = Buffer.from('never stored');
    await expect(session.send({ kind: 'chunk', id: sha(d), data: d })).rejects.toBeInstanceOf(UnavailableError);
    expect(storage.puts.length).toBeGreaterThan(1);
    expect(storage.puts.length).toBeLessThanOrEqual(6);
    storage.beforePut = async () => undefined;
    const s2 = await clientNet.openReplica(B, A);
    const before = storage.puts.length;
    await expect(s2.send({ kind: 'chunk', id: sha(Buffer.from('other')), data: d })).rejects.toMatchObject({ name: 'DataLossError' });
    expect(storage.puts.length).toBe(before);
    expect((s2 as unknown as { streams: number }).streams).toBe(1);
  });
});
