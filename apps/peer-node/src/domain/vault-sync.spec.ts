/**
 * Anti-entropy with summaries, hedged repair reads and recovery with progress, against memory ports
 * (honest stores that verify hashes; peers that can be slow, down or malicious).
 */
import { createHash } from 'node:crypto';
import pino from 'pino';
import { DataLossError } from '@distri-vault/shared';
import { rank } from './placement';
import { Vault } from './vault';
import { AntiEntropy } from './recovery';
import { MemoryCrypto, MemoryPeers, MemoryStorage } from '../testing/memory-ports';
import { seeded, once, readAll } from '../testing/bytes';

const OWNER = 'a'.repeat(32);
const P1 = 'p1'.padEnd(32, 'b');
const P2 = 'p2'.padEnd(32, 'c');
const CHUNK = 4096;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const signal = () => new AbortController().signal;

function setup(opts: { hedgeMs?: number } = {}) {
  const storage = new MemoryStorage();
  const crypto = new MemoryCrypto();
  const peers = new MemoryPeers([P1, P2]);
  const log = pino({ level: 'silent' });
  const make = (s: MemoryStorage) => new Vault({ storage: s, crypto, peers, log }, { serverId: OWNER, chunkSize: CHUNK, replicas: 3, window: 3, hedgeMs: opts.hedgeMs ?? 300, recoveryLogMs: 100 });
  return { storage, crypto, peers, vault: make(storage), make };
}

describe('Vault anti-entropy with summaries', () => {
  it('exchanges a few entries when the folders differ by a few objects, and fetches exactly the difference', async () => {
    const { vault, storage, peers } = setup();
    for (let i = 0; i < 40; i++) await vault.upload(`f${i}`, undefined, once(seeded(3 * CHUNK, i + 1)), signal());
    const total = storage.objects.size; // 40 manifests + 120 chunks
    expect(total).toBe(160);
    // The owner loses 2 chunks; peer 1 loses 3 others and gains nothing.
    const chunks = storage.ids(OWNER, 'chunk').sort();
    for (const id of chunks.slice(0, 2)) storage.objects.delete(`${OWNER}/chunk/${id}`);
    const p1 = peers.stores.get(P1)!;
    for (const id of chunks.slice(10, 13)) p1.objects.delete(`${OWNER}/chunk/${id}`);
    const r = await vault.syncFrom(P1, signal());
    expect(r.fetched).toBe(2);
    expect(r.peerLacks).toBe(3);
    // Chunk IDs are random here (fresh nonces): 4-bit buckets of ~7.5 chunks, at most 5 differ. The whole
    // folder would be 157 entries.
    expect(r.offered).toBeLessThan(96);
    expect(r.coveredBuckets).toBeLessThanOrEqual(5);
    expect(storage.ids(OWNER, 'chunk').sort()).toEqual(chunks);
    // In sync now: nothing offered at all.
    const again = await vault.syncFrom(P2, signal());
    expect([again.offered, again.fetched, again.coveredBuckets, again.peerLacks]).toEqual([0, 0, 0, 0]);
  });
});

describe('Vault repair reads (hedged)', () => {
  async function brokenLocalChunk(opts: { hedgeMs?: number } = {}) {
    const s = setup(opts);
    const body = seeded(2 * CHUNK, 7);
    await s.vault.upload('f', undefined, once(body), signal());
    const id = s.storage.ids(OWNER, 'chunk').sort()[0]!;
    s.storage.objects.delete(`${OWNER}/chunk/${id}`);
    // The holders are asked in the chunk's placement order.
    const [first, second] = rank(id, OWNER, [P1, P2], false) as [string, string];
    return { ...s, body, id, first, second };
  }

  it('asks the next holder when the first is slow, and cancels the slow one', async () => {
    const { vault, peers, body, storage, id, first, second } = await brokenLocalChunk({ hedgeMs: 50 });
    let cancelled = false;
    peers.fetchHooks.set(first, (_id, s) => new Promise((_, reject) => s?.addEventListener('abort', () => ((cancelled = true), reject(new Error('cancelled'))))));
    const started = Date.now();
    expect((await readAll(vault.read('f', undefined, signal()))).equals(body)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(cancelled).toBe(true);
    expect(peers.fetches.map(([p]) => p)).toEqual([first, second]);
    expect(storage.objects.has(`${OWNER}/chunk/${id}`)).toBe(true);
  });

  it('skips a holder serving wrong bytes: not served, not stored, fetched elsewhere', async () => {
    const { vault, peers, body, storage, id, first } = await brokenLocalChunk({ hedgeMs: 40_000 });
    const puts: string[] = [];
    const put = storage.put.bind(storage);
    storage.put = async (f, k, i, d) => (puts.push(sha(d)), put(f, k, i, d));
    peers.fetchHooks.set(first, async () => Buffer.from('garbage that is not the chunk'));
    const started = Date.now();
    expect((await readAll(vault.read('f', undefined, signal()))).equals(body)).toBe(true);
    expect(Date.now() - started).toBeLessThan(20_000); // the bad answer started the next holder at once, not after 40 s
    expect(puts).toEqual([id]);
  });

  it('fails with DATA_LOSS when every holder serves wrong bytes', async () => {
    const { vault, peers } = await brokenLocalChunk({ hedgeMs: 20 });
    for (const p of [P1, P2]) peers.fetchHooks.set(p, async () => Buffer.from('bad'));
    await expect(readAll(vault.read('f', undefined, signal()))).rejects.toBeInstanceOf(DataLossError);
  });
});

describe('Vault recovery with progress', () => {
  it('restores a wiped folder, reports progress and a final status, and checks every live chunk', async () => {
    const { vault, storage, peers, make } = setup();
    const files = [seeded(5 * CHUNK, 1), seeded(CHUNK + 1, 2), seeded(0, 3)];
    for (const [i, f] of files.entries()) await vault.upload(`f${i}`, undefined, once(f), signal());
    // One peer lacks a chunk the other has: the recovery still ends complete.
    const c = storage.ids(OWNER, 'chunk').sort()[0]!;
    peers.stores.get(P1)!.objects.delete(`${OWNER}/chunk/${c}`);
    const fresh = new MemoryStorage();
    const revived = make(fresh);
    expect(revived.recovery.status()).toMatchObject({ phase: 'idle', run: 0 });
    const run = revived.recovery.start('startup');
    expect(run.joined).toBe(false);
    expect(run.status).toMatchObject({ phase: 'syncing', run: 1, trigger: 'startup', peersTotal: 2 });
    expect(revived.recovery.start('request').joined).toBe(true);
    const st = await run.done;
    expect(st).toMatchObject({ phase: 'done', peersDone: 2, peersOk: 2, peersTotal: 2, files: 3, manifests: 3, chunks: 7, chunksMissing: 0, errors: 0 });
    expect(st.chunksChecked).toBe(7);
    expect(st.bytes).toBeGreaterThan(6 * CHUNK);
    expect(st.finishedUnixMs).toBeGreaterThanOrEqual(st.startedUnixMs);
    expect([...fresh.objects.keys()].sort()).toEqual([...storage.objects.keys()].sort());
    for (const [i, f] of files.entries()) expect((await readAll(revived.read(`f${i}`, undefined, signal()))).equals(f)).toBe(true);
    expect(revived.recovery.status()).toMatchObject({ phase: 'done', run: 1 });
  });

  it('fetches a live chunk that no sync offered during the verifying phase, and fails when nobody has it', async () => {
    const { vault, storage, peers, make } = setup();
    await vault.upload('f', undefined, once(seeded(3 * CHUNK, 5)), signal());
    const [c0, c1] = storage.ids(OWNER, 'chunk').sort();
    // c0 is only on P2, and P2's sync is down, but its GetFile works: verifying fetches it.
    peers.stores.get(P1)!.objects.delete(`${OWNER}/chunk/${c0}`);
    const p2 = peers.stores.get(P2)!;
    const syncFolder = peers.syncFolder.bind(peers);
    peers.syncFolder = async (peer, ...rest) => {
      if (peer === P2) throw new Error('sync refused');
      return syncFolder(peer, ...rest);
    };
    const revived = make(new MemoryStorage());
    const st = await revived.recovery.start('request').done;
    expect(st).toMatchObject({ phase: 'done', peersOk: 1, peersDone: 2, errors: 1, chunksMissing: 0, chunks: 3 });
    expect(st.errorMessages[0]).toMatch(/sync refused/);
    // Now c1 exists nowhere: the recovery ends failed, naming the missing chunk count.
    for (const s of [peers.stores.get(P1)!, p2]) s.objects.delete(`${OWNER}/chunk/${c1}`);
    const again = make(new MemoryStorage());
    const st2 = await again.recovery.start('request').done;
    expect(st2).toMatchObject({ phase: 'failed', chunksMissing: 1 });
  });

  it('keeps serving reads while the index is rebuilt (built aside, then swapped)', async () => {
    const { vault } = setup();
    await vault.upload('a', undefined, once(seeded(100, 1)), signal());
    const rebuilt = vault.loadIndex(signal());
    expect(vault.stat('a').size).toBe(100); // not cleared while the rebuild runs
    await rebuilt;
    expect(vault.stat('a').size).toBe(100);
  });

  it('fails (no peer) with a clear status and an UNAVAILABLE for the synchronous call', async () => {
    const { peers, make } = setup();
    peers.down.add(P1);
    peers.down.add(P2);
    const v = make(new MemoryStorage());
    await expect(v.recover(signal())).rejects.toMatchObject({ name: 'UnavailableError' });
    expect(v.recovery.status()).toMatchObject({ phase: 'failed', peersTotal: 0, errorMessages: ['no peer is connected to recover from'] });
  });
});

describe('AntiEntropy schedule', () => {
  const until = async (cond: () => boolean, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('restores a lost object in a periodic round, and on a peer (re)connect', async () => {
    const { vault, storage } = setup();
    await vault.upload('f', undefined, once(seeded(2 * CHUNK, 3)), signal());
    const [c0, c1] = storage.ids(OWNER, 'chunk');
    const ae = new AntiEntropy(vault, pino({ level: 'silent' }), { intervalMs: 50 });
    storage.objects.delete(`${OWNER}/chunk/${c0}`);
    ae.start();
    try {
      await until(() => storage.objects.has(`${OWNER}/chunk/${c0}`));
    } finally {
      ae.stop();
    }
    const once2 = new AntiEntropy(vault, pino({ level: 'silent' }), { intervalMs: 0 });
    storage.objects.delete(`${OWNER}/chunk/${c1}`);
    once2.peerConnected(P1);
    await until(() => storage.objects.has(`${OWNER}/chunk/${c1}`));
    once2.stop();
  });

  it('on an empty folder, the first peer to connect starts a start-up recovery, and later ones join it', async () => {
    const { vault, make } = setup();
    await vault.upload('f', undefined, once(seeded(3 * CHUNK, 4)), signal());
    const fresh = make(new MemoryStorage());
    const ae = new AntiEntropy(fresh, pino({ level: 'silent' }), { intervalMs: 0 });
    ae.recoverOnFirstPeer = true;
    ae.peerConnected(P1);
    expect(fresh.recovery.status()).toMatchObject({ phase: 'syncing', trigger: 'startup', run: 1 });
    ae.peerConnected(P2); // already queued in the run: joins it, no separate sync
    await until(() => fresh.recovery.status().phase === 'done');
    expect(fresh.recovery.status()).toMatchObject({ run: 1, peersDone: 2, files: 1, chunks: 3 });
    ae.stop();
  });
});
