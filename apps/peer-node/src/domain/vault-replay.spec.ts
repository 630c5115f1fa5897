/**
 * Replay of old manifests, in the domain (the crypto side is in crypto-service's crypto.grpc.spec.ts).
 * What "replay" can mean here, since every object is content-addressed (a peer cannot answer a request
 * for ID X with other bytes: the hash check refuses them):
 * (a) a manifest the owner itself wrote, that a rotation superseded or a shred left behind, offered again
 *     by a peer during anti-entropy or a recovery: it opens under no key (DATA_LOSS), so it is never
 *     indexed again, and nothing of a shredded or removed version comes back;
 * (b) a manifest of another folder or another node, stored by a peer under this folder: it opens under no
 *     key of this node for this folder (DATA_LOSS), never indexed;
 * (c) an older version offered where a newer one is expected: when the newer one is asked for by ID, an
 *     older one's bytes fail the hash check (never stored, DATA_LOSS if every holder does it). What the
 *     protocol cannot detect is a peer that withholds objects written after the last rotation (the owner,
 *     after losing its disk, has no trusted record of what was newest): a recovery takes the union of
 *     every peer, so one honest holder is enough; and a rotation fences the past: nothing sealed before it
 *     can be replayed, withheld records or not (last test).
 */
import { createHash } from 'node:crypto';
import pino from 'pino';
import { DataLossError } from '@distri-vault/shared';
import { Vault } from './vault';
import { encodeManifest } from './manifest';
import { MemoryCrypto, MemoryPeers, MemoryStorage } from '../testing/memory-ports';
import { once, seeded, readAll } from '../testing/bytes';

const OWNER = 'a'.repeat(32);
const OTHER = 'o'.padEnd(32, 'd');
const P1 = 'p1'.padEnd(32, 'b');
const P2 = 'p2'.padEnd(32, 'c');
const CHUNK = 4096;
const signal = () => new AbortController().signal;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function setup() {
  const storage = new MemoryStorage();
  const crypto = new MemoryCrypto();
  const peers = new MemoryPeers([P1, P2]);
  const log = pino({ level: 'silent' });
  const skipped: string[] = [];
  const make = (s: MemoryStorage) => new Vault({ storage: s, crypto, peers, log }, { serverId: OWNER, chunkSize: CHUNK, replicas: 3, window: 3, hedgeMs: 20, recoveryLogMs: 100 });
  return { storage, crypto, peers, vault: make(storage), make, skipped };
}

/** Every manifest of the owner's folder in `store`, by ID. */
function manifests(store: MemoryStorage): Map<string, Buffer> {
  return new Map(store.ids(OWNER, 'manifest').map((id) => [id, store.objects.get(`${OWNER}/manifest/${id}`)!]));
}

/** Waits until both peers hold every manifest the owner holds (the third copy is written in the background). */
async function settled(storage: MemoryStorage, peers: MemoryPeers): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const want = storage.ids(OWNER, 'manifest');
    if ([P1, P2].every((p) => want.every((id) => peers.stores.get(p)!.objects.has(`${OWNER}/manifest/${id}`)))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('copies did not settle within 2 s');
}

describe('replay of old manifests (a): superseded by a rotation or shredded, offered again by a peer', () => {
  it('anti-entropy fetches them back (they are valid objects) but opens none: nothing shredded or removed comes back, the replacements stay indexed', async () => {
    const { vault, storage, peers, crypto } = setup();
    const keep = seeded(2 * CHUNK + 9, 1);
    await vault.upload('keep.bin', undefined, once(keep), signal());
    await vault.upload('secret.txt', undefined, once(seeded(CHUNK, 2)), signal());
    await vault.upload('secret.txt', undefined, once(seeded(10, 3)), signal());
    await vault.upload('gone.txt', undefined, once(Buffer.from('deleted before the rotation')), signal());
    await vault.delete('gone.txt', signal());
    await settled(storage, peers);
    const before = manifests(storage);

    const { rotation } = await vault.shred('secret.txt', undefined, signal());
    expect(rotation.retiredFingerprints).toHaveLength(1);
    expect(rotation.manifestsRewritten).toBe(4); // keep v1, gone v1, gone v2, secret's removal record
    // Every manifest of before the shred: shredded (secret v1, v2) or superseded (keep v1, gone v1, v2).
    expect(before.size).toBe(5);
    for (const [id, bytes] of before) await expect(crypto.openManifest(OWNER, bytes)).rejects.toBeInstanceOf(DataLossError);

    // The owner lost its copies of them (a disk replaced, say); a peer still has every one and offers it.
    for (const id of before.keys()) await storage.delete(OWNER, 'manifest', id);
    const r = await vault.syncFrom(P1, signal());
    expect(r.manifests).toBe(before.size); // fetched: they are valid objects of the folder...
    for (const id of before.keys()) expect(storage.objects.has(`${OWNER}/manifest/${id}`)).toBe(true);
    // ...and never indexed again.
    expect(vault.list().map((f) => f.path)).toEqual(['keep.bin']);
    expect(() => vault.versions('secret.txt')).toThrow(expect.objectContaining({ name: 'NotFoundError' }));
    expect(vault.versions('gone.txt').map((v) => [v.version, !!v.deleted])).toEqual([[1, false], [2, true]]);
    expect((await readAll(vault.read('keep.bin', undefined, signal()))).equals(keep)).toBe(true);
    // Quietly skipped (DATA_LOSS is the expected outcome for these): no reason to refuse the next rotation.
    await expect(vault.rotateKeys(signal())).resolves.toMatchObject({ manifestsRewritten: 4 });
  });

  it('a wiped owner recovering from its peers reinstates none of them, even when every peer withholds the removal record', async () => {
    const { vault, storage, peers, crypto, make } = setup();
    await vault.upload('keep.bin', undefined, once(Buffer.from('kept')), signal());
    await vault.upload('v.txt', undefined, once(Buffer.from('version one: removed')), signal());
    await vault.upload('v.txt', undefined, once(Buffer.from('version two')), signal());
    await vault.deleteVersion('v.txt', 1, signal()); // history record: removes [1]
    await settled(storage, peers);
    const before = manifests(storage);
    await vault.rotateKeys(signal()); // leaves v.txt v1 behind (shredded), rewrites the rest
    await settled(storage, peers);
    // Find the removal record's replacement and have every peer withhold it: a peer that wants v1 back.
    const replacements = storage.ids(OWNER, 'manifest').filter((id) => !before.has(id));
    expect(replacements).toHaveLength(3); // keep v1, v.txt v2, the removal record
    const opened = await Promise.all(replacements.map(async (id) => ({ id, m: JSON.parse((await crypto.openManifest(OWNER, await storage.get(OWNER, 'manifest', id))).toString()) })));
    const record = opened.find((x) => x.m.removes)!;
    expect(record.m.removes).toEqual([1]);
    for (const p of [P1, P2]) peers.stores.get(p)!.objects.delete(`${OWNER}/manifest/${record.id}`);

    const revived = make(new MemoryStorage());
    const st = await revived.recovery.start('request').done;
    expect(st).toMatchObject({ phase: 'done', errors: 0, chunksMissing: 0 });
    expect(revived.unreadableManifests()).toBe(before.size); // every pre-rotation manifest was offered, none opened
    // v1 stays gone: its only manifest was sealed under the retired key. v2 is the latest.
    expect(revived.versions('v.txt').map((v) => v.version)).toEqual([2]);
    expect((await readAll(revived.read('v.txt', undefined, signal()))).toString()).toBe('version two');
    await expect(readAll(revived.read('v.txt', 1, signal()))).rejects.toMatchObject({ name: 'NotFoundError' });
  });
});

describe('replay of manifests (b): of another folder or another node, stored by a peer under this folder', () => {
  it('are fetched as objects of the folder but never indexed; the recovery ends clean and a rotation is not refused', async () => {
    const { vault, storage, peers, crypto, make } = setup();
    await vault.upload('mine.txt', undefined, once(Buffer.from('mine')), signal());
    await settled(storage, peers);
    // A manifest naming a plausible file, sealed (1) by this node's own key for another folder (two nodes
    // given the same recovery key), (2) by another node's key for its own folder, (3) by another node's
    // key for this folder (a forgery attempt without the owner's key).
    const fake = (path: string) => encodeManifest({ format: 1, path, version: 1, deleted: false, size: 0, sha256: sha(Buffer.alloc(0)), createdUnixMs: 1, fileId: Buffer.alloc(16).toString('base64'), wrappedKey: '', chunks: [] });
    const stranger = new MemoryCrypto();
    const planted = [
      await crypto.sealManifest(OTHER, fake('same-key-other-folder.txt')),
      await stranger.sealManifest(OTHER, fake('other-node.txt')),
      await stranger.sealManifest(OWNER, fake('forged-for-owner.txt')),
    ];
    for (const p of planted) {
      await peers.stores.get(P1)!.put(OWNER, 'manifest', p.id, p.ciphertext);
      await expect(crypto.openManifest(OWNER, p.ciphertext)).rejects.toBeInstanceOf(DataLossError);
    }

    // A running owner's anti-entropy round.
    const r = await vault.syncFrom(P1, signal());
    expect(r.manifests).toBe(3);
    expect(vault.list().map((f) => f.path)).toEqual(['mine.txt']);
    expect(vault.unreadableManifests()).toBe(3);

    // A wiped owner's recovery.
    const revived = make(new MemoryStorage());
    const skipped: string[] = [];
    const st = await revived.recovery.start('request').done;
    await revived.loadIndex(signal(), (id) => skipped.push(id));
    expect(st).toMatchObject({ phase: 'done', errors: 0, files: 1 });
    expect(skipped).toEqual([]);
    expect(revived.list().map((f) => f.path)).toEqual(['mine.txt']);
    expect(revived.unreadableManifests()).toBe(3);
    await expect(revived.rotateKeys(signal())).resolves.toMatchObject({ manifestsRewritten: 1 });
  });
});

describe('replay (c): an older version offered where a newer one is expected', () => {
  it('a holder answering the newest manifest\'s ID with an older manifest\'s bytes is refused by hash: never stored, the honest holder serves it', async () => {
    const { vault, storage, peers, make } = setup();
    await vault.upload('f.txt', undefined, once(Buffer.from('old content')), signal());
    await settled(storage, peers);
    const oldId = storage.ids(OWNER, 'manifest')[0]!;
    const oldBytes = manifests(storage).get(oldId)!;
    await vault.upload('f.txt', undefined, once(Buffer.from('new content')), signal());
    await settled(storage, peers);
    const newId = storage.ids(OWNER, 'manifest').find((id) => id !== oldId)!;

    // The owner's copy of the newest manifest is corrupt (so it is fetched by ID); one holder answers that ID with the old bytes.
    const corrupt = () => void (storage.objects.get(`${OWNER}/manifest/${newId}`)![5]! ^= 1);
    corrupt();
    const [liar, honest] = [P1, P2];
    peers.fetchHooks.set(liar, async (id) => (id === newId ? Buffer.from(oldBytes) : null));
    const fresh = make(storage);
    const skipped0: [string, string][] = [];
    await fresh.loadIndex(signal(), (id, err) => skipped0.push([id, err.message]));
    expect(skipped0).toEqual([]);
    expect((await readAll(fresh.read('f.txt', undefined, signal()))).toString()).toBe('new content');
    expect(fresh.versions('f.txt').map((v) => v.version)).toEqual([1, 2]);
    expect(storage.objects.get(`${OWNER}/manifest/${newId}`)!.equals(oldBytes)).toBe(false);

    // Every holder lies: the newest version is not replaced by the old one; the manifest is reported unreadable.
    corrupt();
    peers.fetchHooks.set(honest, async (id) => (id === newId ? Buffer.from(oldBytes) : null));
    const skipped: [string, string][] = [];
    const again = make(storage);
    await again.loadIndex(signal(), (id, err) => skipped.push([id, err.name]));
    expect(skipped).toEqual([[newId, 'DataLossError']]);
    expect(storage.objects.has(`${OWNER}/manifest/${newId}`)).toBe(false);
    expect(again.versions('f.txt').map((v) => v.version)).toEqual([1]);
    // ...and, as that version cannot be carried over, a rotation refuses rather than shredding it.
    await expect(again.rotateKeys(signal())).rejects.toMatchObject({ name: 'FailedPreconditionError' });
  });
});
