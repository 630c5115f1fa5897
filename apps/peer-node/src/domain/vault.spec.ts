import { createHash } from 'node:crypto';
import pino from 'pino';
import { DataLossError, InvalidArgumentError, NotFoundError, UnavailableError, CancelledError } from '@distri-vault/shared';
import { Vault } from './vault';
import { ReplicationBacklog, type BacklogOptions } from './replication';
import { MemoryCrypto, MemoryPeers, MemoryStorage } from '../testing/memory-ports';
import { seeded, readAll } from '../testing/bytes';

const OWNER = 'a'.repeat(32);
const CHUNK = 4096;

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */

async function* framesOf(buf: Buffer, frame = 1500): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += frame) yield buf.subarray(i, i + frame);
}

function setup(replicas = 3, writeQuorum = 2, peerIds = ['p1'.padEnd(32, 'b'), 'p2'.padEnd(32, 'c')], backlog?: Partial<BacklogOptions>) {
  const storage = new MemoryStorage();
  const crypto = new MemoryCrypto();
  const peers = new MemoryPeers(peerIds);
  const log = pino({ level: 'silent' });
  const replication = backlog ? new ReplicationBacklog({ storage, peers, log }, { window: 3, ...backlog }) : undefined;
  const vault = new Vault({ storage, crypto, peers, log, replication }, { serverId: OWNER, chunkSize: CHUNK, replicas, window: 3, writeQuorum });
  return { storage, crypto, peers, vault };
}

const signal = () => new AbortController().signal;

describe('Vault', () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17])('round-trips %i bytes with every object on owner and both peers', async (size) => {
    const { storage, peers, vault } = setup();
    const body = seeded(size, size + 1);
    const info = await vault.upload('dir/file.bin', size, framesOf(body), signal());
    await vault.replication.idle();
    expect(info).toMatchObject({ path: 'dir/file.bin', version: 1, size, sha256: createHash('sha256').update(body).digest('hex'), chunks: Math.ceil(size / CHUNK) });
    expect((await readAll(vault.read('dir/file.bin', undefined, signal()))).equals(body)).toBe(true);
    const own = storage.ids(OWNER, 'chunk').sort();
    expect(own).toHaveLength(info.chunks);
    for (const s of peers.stores.values()) {
      expect(s.ids(OWNER, 'chunk').sort()).toEqual(own);
      expect(s.ids(OWNER, 'manifest')).toHaveLength(1);
    }
  });

  it('never writes plaintext or the path to any store', async () => {
    const { storage, peers, vault } = setup();
    const marker = Buffer.from('PLAINTEXT-MARKER-1234567890');
    await vault.upload('secret-name.txt', undefined, framesOf(Buffer.concat([marker, marker])), signal());
    for (const s of [storage, ...peers.stores.values()]) {
      for (const data of s.objects.values()) {
        expect(data.includes(marker)).toBe(false);
        expect(data.includes(Buffer.from('secret-name'))).toBe(false);
      }
    }
  });

  it('numbers versions per path, lists the latest, and deletes with a tombstone', async () => {
    const { vault } = setup();
    await vault.upload('a.txt', undefined, framesOf(Buffer.from('one')), signal());
    const v2 = await vault.upload('a.txt', undefined, framesOf(Buffer.from('two!')), signal());
    await vault.upload('b/c.txt', undefined, framesOf(Buffer.from('c')), signal());
    expect(v2.version).toBe(2);
    expect(vault.list().map((f) => [f.path, f.version, f.size])).toEqual([
      ['a.txt', 2, 4],
      ['b/c.txt', 1, 1],
    ]);
    expect(vault.list('b/').map((f) => f.path)).toEqual(['b/c.txt']);
    expect((await readAll(vault.read('a.txt', 1, signal()))).toString()).toBe('one');
    expect(await vault.delete('a.txt', signal())).toBe(3);
    expect(() => vault.stat('a.txt')).toThrow(NotFoundError);
    await expect(vault.delete('a.txt', signal())).rejects.toBeInstanceOf(NotFoundError);
    expect(vault.list().map((f) => f.path)).toEqual(['b/c.txt']);
  });

  it('rejects bad paths and a size mismatch, leaving no version', async () => {
    const { vault, storage } = setup();
    for (const p of ['../x', '/abs', 'a//b', 'a/./b', 'nul\u0000', '']) {
      await expect(vault.upload(p, undefined, framesOf(Buffer.from('x')), signal())).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(vault.upload('f', 10, framesOf(Buffer.from('short')), signal())).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(vault.list()).toEqual([]);
    expect(storage.ids(OWNER, 'manifest')).toEqual([]);
  });

  it('leaves no version when the upload is cancelled', async () => {
    const { vault } = setup();
    const ctrl = new AbortController();
    async function* slow() {
      yield seeded(CHUNK * 2);
      ctrl.abort();
      yield seeded(CHUNK);
    }
    await expect(vault.upload('f', undefined, slow(), ctrl.signal)).rejects.toBeInstanceOf(CancelledError);
    expect(vault.list()).toEqual([]);
  });

  it('fails with UNAVAILABLE when fewer than W-1 peers are connected, before storing anything', async () => {
    const { vault, peers, storage } = setup();
    for (const p of peers.stores.keys()) peers.down.add(p);
    await expect(vault.upload('f', undefined, framesOf(seeded(100)), signal())).rejects.toBeInstanceOf(UnavailableError);
    expect(storage.objects.size).toBe(0);
    const w3 = setup(3, 3);
    w3.peers.down.add([...w3.peers.stores.keys()][0]!);
    await expect(w3.vault.upload('f', undefined, framesOf(seeded(100)), signal())).rejects.toBeInstanceOf(UnavailableError);
    expect(w3.storage.objects.size).toBe(0);
  });

  it('writes with W=2 when one of two peers is down, leaving no backlog behind', async () => {
    const { vault, peers, storage } = setup();
    const [p1, p2] = [...peers.stores.keys()];
    peers.down.add(p1!);
    const info = await vault.upload('f', undefined, framesOf(seeded(3 * CHUNK)), signal());
    await vault.replication.idle();
    expect(peers.stores.get(p2!)!.ids(OWNER, 'chunk').sort()).toEqual(storage.ids(OWNER, 'chunk').sort());
    expect(storage.ids(OWNER, 'chunk')).toHaveLength(info.chunks);
    expect(vault.replication.stats().objects).toBe(0);
  });

  it('fails with UNAVAILABLE and shows no version when the copies needed for the quorum fail', async () => {
    const { vault, peers } = setup(3, 3);
    const [p1] = [...peers.stores.keys()];
    const release = peers.hold(p1!);
    const up = vault.upload('f', undefined, framesOf(seeded(2 * CHUNK)), signal());
    await new Promise((r) => setTimeout(r, 20));
    peers.down.add(p1!);
    release();
    await expect(up).rejects.toBeInstanceOf(UnavailableError);
    expect(vault.list()).toEqual([]);
  });

  it('fails with UNAVAILABLE and shows no version when no quorum of copies comes within writeTimeoutMs (silent peers)', async () => {
    const storage = new MemoryStorage();
    const peers = new MemoryPeers(['p1'.padEnd(32, 'b'), 'p2'.padEnd(32, 'c')]);
    const releases = [...peers.stores.keys()].map((p) => peers.hold(p));
    const vault = new Vault({ storage, crypto: new MemoryCrypto(), peers, log: pino({ level: 'silent' }) }, { serverId: OWNER, chunkSize: CHUNK, replicas: 3, window: 3, writeQuorum: 2, writeTimeoutMs: 200 });
    const started = Date.now();
    await expect(vault.upload('f', undefined, framesOf(seeded(2 * CHUNK)), signal())).rejects.toThrow(/no quorum of peer copies within 200 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(vault.list()).toEqual([]);
    releases.forEach((r) => r());
  });

  it('returns with W copies while a slow peer lags; the backlog tracks the rest, re-reads it from disk, and drains', async () => {
    // Five peers, R=3, W=2: each object goes to its top two peers; one peer is stalled.
    const ids = ['p1', 'p2', 'p3', 'p4', 'p5'].map((p) => p.padEnd(32, 'd'));
    // No retain budget: these 4 KiB chunks would otherwise be kept in memory (replication.spec.ts tests that).
    const { vault, peers, storage } = setup(3, 2, ids, { retainBytes: 0 });
    const slow = ids[0]!;
    const release = peers.hold(slow);
    let reads = 0;
    const get = storage.get.bind(storage);
    storage.get = async (...a: Parameters<MemoryStorage['get']>) => {
      reads++;
      return get(...a);
    };
    const body = seeded(40 * CHUNK, 5);
    const info = await vault.upload('big', undefined, framesOf(body), signal());
    const owed = [...storage.ids(OWNER, 'chunk').map((id) => `chunk/${id}`), ...storage.ids(OWNER, 'manifest').map((id) => `manifest/${id}`)];
    expect(owed).toHaveLength(41);
    // The upload is done while every copy owed to the slow peer is still pending.
    const st = vault.replication.stats();
    const slowOwed = st.peers.find((p) => p.peerId === slow);
    expect(slowOwed).toBeDefined();
    expect(slowOwed!.objects).toBeGreaterThan(5);
    expect(st.objects).toBe(slowOwed!.objects + st.peers.filter((p) => p.peerId !== slow).reduce((n, p) => n + p.objects, 0));
    expect(st.bytes).toBeGreaterThan(0);
    expect(peers.stores.get(slow)!.ids(OWNER, 'chunk')).toHaveLength(0);
    // Every object already has at least W=2 copies: the owner's and one peer's.
    for (const key of owed) {
      const holders = ids.filter((p) => p !== slow && peers.stores.get(p)!.objects.has(`${OWNER}/${key}`));
      expect(holders.length).toBeGreaterThanOrEqual(1);
    }
    const readsBefore = reads;
    release();
    await vault.replication.idle();
    // What the slow peer got after the upload returned was re-read from the local store (bytes not held).
    expect(reads - readsBefore).toBeGreaterThanOrEqual(slowOwed!.objects - 3);
    expect(vault.replication.stats()).toMatchObject({ objects: 0, bytes: 0, failed: 0 });
    // In the end every object is on exactly R=3 nodes: the owner and its top two peers.
    for (const id of storage.ids(OWNER, 'chunk')) {
      expect(ids.filter((p) => peers.stores.get(p)!.objects.has(`${OWNER}/chunk/${id}`))).toHaveLength(2);
    }
    expect((await readAll(vault.read('big', undefined, signal()))).equals(body)).toBe(true);
    expect(info.chunks).toBe(40);
  });

  it('keeps the chunks in flight of all transfers together within the node-wide memory budget', async () => {
    // Budget: 3 chunks (each counts twice). Six uploads, then six downloads, run at once, each with a window
    // of 3: without the budget 18 chunks would be in flight together.
    const storage = new MemoryStorage();
    const crypto = new MemoryCrypto();
    const peers = new MemoryPeers(['p1'.padEnd(32, 'b'), 'p2'.padEnd(32, 'c')]);
    const vault = new Vault({ storage, crypto, peers, log: pino({ level: 'silent' }) }, { serverId: OWNER, chunkSize: CHUNK, replicas: 3, window: 3, memoryBudgetBytes: 3 * 2 * CHUNK });
    let inFlight = 0;
    let most = 0;
    const slow = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
      most = Math.max(most, ++inFlight);
      try {
        await new Promise((r) => setTimeout(r, 2));
        return await fn(...a);
      } finally {
        inFlight--;
      }
    };
    crypto.sealChunk = slow(crypto.sealChunk.bind(crypto));
    crypto.openChunk = slow(crypto.openChunk.bind(crypto));
    const bodies = Array.from({ length: 6 }, (_, i) => seeded(10 * CHUNK, 100 + i));
    await Promise.all(bodies.map((b, i) => vault.upload(`f${i}`, undefined, framesOf(b), signal())));
    expect([most, vault.budget.inUse]).toEqual([3, 0]); // uploads wait for the budget
    most = 0;
    const back = await Promise.all(bodies.map((_, i) => readAll(vault.read(`f${i}`, undefined, signal()))));
    back.forEach((b, i) => expect(b.equals(bodies[i]!)).toBe(true));
    // Downloads always fetch the chunk their reader waits for (6), and read ahead within the budget (3).
    expect(most).toBeLessThanOrEqual(6 + 3);
    expect(vault.budget.inUse).toBe(0);
    // A reader that stalls holds no budget: an upload goes through while it waits.
    const it = vault.read('f0', undefined, signal())[Symbol.asyncIterator]();
    await it.next();
    await new Promise((r) => setTimeout(r, 50)); // its read-ahead has finished
    expect(vault.budget.inUse).toBe(0);
    await vault.upload('during-stall', undefined, framesOf(seeded(10 * CHUNK, 9)), signal());
    await it.return!(undefined);
  });

  it('serves a missing or corrupt local chunk from a peer, skipping a peer with bad bytes, and repairs it', async () => {
    const { vault, storage, peers } = setup();
    const body = seeded(3 * CHUNK, 9);
    await vault.upload('f', undefined, framesOf(body), signal());
    const [c0, c1] = storage.ids(OWNER, 'chunk');
    storage.objects.delete(`${OWNER}/chunk/${c0}`);
    storage.objects.get(`${OWNER}/chunk/${c1}`)![20] ^= 1;
    // The first peer holds a corrupt copy of c1: it must be detected and the second peer used.
    const firstPeer = [...peers.stores.values()][0]!;
    firstPeer.objects.get(`${OWNER}/chunk/${c1}`)![5] ^= 1;
    expect((await readAll(vault.read('f', undefined, signal()))).equals(body)).toBe(true);
    expect(await storage.get(OWNER, 'chunk', c0!)).toBeDefined();
    expect(await storage.get(OWNER, 'chunk', c1!)).toBeDefined();
  });

  it('never returns bytes when no copy verifies', async () => {
    const { vault, storage, peers } = setup();
    await vault.upload('f', undefined, framesOf(seeded(2 * CHUNK)), signal());
    const c0 = storage.ids(OWNER, 'chunk')[0]!;
    for (const s of [storage, ...peers.stores.values()]) s.objects.get(`${OWNER}/chunk/${c0}`)![0] ^= 0xff;
    await expect(readAll(vault.read('f', undefined, signal()))).rejects.toBeInstanceOf(DataLossError);
  });

  it('recovers a wiped folder from its peers, index included', async () => {
    const { vault, storage, crypto, peers } = setup();
    const files = [seeded(0), seeded(CHUNK + 1, 2), seeded(3 * CHUNK, 3)];
    for (const [i, f] of files.entries()) await vault.upload(`f${i}`, undefined, framesOf(f), signal());
    await vault.delete('f0', signal());
    const fresh = new MemoryStorage();
    const revived = new Vault({ storage: fresh, crypto, peers, log: pino({ level: 'silent' }) }, { serverId: OWNER, chunkSize: CHUNK, replicas: 3, window: 3 });
    expect(await revived.loadIndex()).toBe(0);
    const summary = await revived.recover(signal());
    expect(summary).toMatchObject({ peers: 2, files: 2, manifests: 4 });
    expect([...fresh.objects.keys()].sort()).toEqual([...storage.objects.keys()].sort());
    for (const i of [1, 2]) expect((await readAll(revived.read(`f${i}`, undefined, signal()))).equals(files[i]!)).toBe(true);
    expect(() => revived.stat('f0')).toThrow(NotFoundError);
  });
});
