/**
 * Vault-key rotation and crypto-shredding in the domain, against memory ports whose crypto keeps a
 * keyring like the crypto-service: rotate -> re-wrap every kept version -> retire; the index prefers a
 * rotation's replacement manifest; after the retire, a shredded version's manifest and chunks, as a peer
 * still holds them, open under no key, while every live file reads back identical.
 */
import pino from 'pino';
import { DataLossError } from '@distri-vault/shared';
import { Vault } from './vault';
import { FileIndex } from './file-index';
import { decodeManifest, type Manifest } from './manifest';
import { MemoryCrypto, MemoryPeers, MemoryStorage } from '../testing/memory-ports';
import { once, seeded, readAll } from '../testing/bytes';

const OWNER = 'a'.repeat(32);
const P1 = 'p1'.padEnd(32, 'b');
const P2 = 'p2'.padEnd(32, 'c');
const CHUNK = 4096;
const signal = () => new AbortController().signal;

function setup() {
  const storage = new MemoryStorage();
  const crypto = new MemoryCrypto();
  const peers = new MemoryPeers([P1, P2]);
  const log = pino({ level: 'silent' });
  const make = (s: MemoryStorage) => new Vault({ storage: s, crypto, peers, log }, { serverId: OWNER, chunkSize: CHUNK, replicas: 3, window: 3, recoveryLogMs: 100 });
  return { storage, crypto, peers, vault: make(storage), make };
}

/** Every manifest of the owner's folder in `store` that `crypto` opens, decoded, by ID. */
async function openable(store: MemoryStorage, crypto: MemoryCrypto): Promise<Map<string, Manifest>> {
  const out = new Map<string, Manifest>();
  for (const id of store.ids(OWNER, 'manifest')) {
    try {
      out.set(id, decodeManifest(await crypto.openManifest(OWNER, await store.get(OWNER, 'manifest', id))));
    } catch (err) {
      if (!(err instanceof DataLossError)) throw err;
    }
  }
  return out;
}

describe('FileIndex prefers a rotation replacement', () => {
  const m = (generation: number | undefined, createdUnixMs = 1): Manifest => ({
    format: 1,
    path: 'p',
    version: 1,
    deleted: false,
    size: 0,
    sha256: '',
    createdUnixMs,
    fileId: '',
    wrappedKey: '',
    chunks: [],
    ...(generation === undefined ? {} : { generation }),
  });
  it.each([
    ['original first', [['old', m(undefined)], ['new', m(1)]]],
    ['replacement first', [['new', m(1)], ['old', m(undefined)]]],
    ['two rotations, any order', [['g2', m(2)], ['old', m(undefined)], ['new', m(1)]]],
  ] as const)('%s', (_name, adds) => {
    const index = new FileIndex();
    for (const [id, man] of adds) index.add(id, man);
    const want = adds.some(([id]) => id === 'g2') ? 'g2' : 'new';
    expect(index.find('p', 1)?.manifestId).toBe(want);
  });
  it('keeps the earlier-created record between equal generations', () => {
    const index = new FileIndex();
    index.add('late', m(1, 5));
    index.add('early', m(1, 2));
    index.add('later', m(1, 9));
    expect(index.find('p', 1)?.manifestId).toBe('early');
  });
});

describe('Vault key rotation', () => {
  it('re-wraps every kept version (live, history, deleted file, restored) under a new key, then retires the old one: everything reads back identical', async () => {
    const { vault, crypto, storage, peers, make } = setup();
    const bodies = new Map<string, Buffer[]>();
    const put = async (path: string, body: Buffer) => {
      await vault.upload(path, undefined, once(body), signal());
      bodies.set(path, [...(bodies.get(path) ?? []), body]);
    };
    await put('a.bin', seeded(3 * CHUNK + 5, 1));
    await put('a.bin', seeded(CHUNK, 2));
    await put('b/c.txt', seeded(10, 3));
    await put('gone.txt', seeded(2 * CHUNK, 4));
    await vault.delete('gone.txt', signal()); // a tombstone: the history is kept (restorable)
    await vault.restore('a.bin', 1, signal()); // v3 shares v1's data key and chunks
    const before = { list: vault.list(), a: vault.versions('a.bin'), gone: vault.versions('gone.txt') };
    const chunksBefore = storage.ids(OWNER, 'chunk').sort();
    const manifestsBefore = storage.ids(OWNER, 'manifest').length;
    const oldFp = (await crypto.keyInfo()).keyFingerprint;

    const r = await vault.rotateKeys(signal());
    expect(r.retiredFingerprints).toEqual([oldFp]);
    expect(r.keyFingerprint).not.toBe(oldFp);
    expect(r.manifestsRewritten).toBe(manifestsBefore); // every record kept: 3 of a, 1 of b, 2 of gone
    expect(r.versionsShredded).toBe(0);
    expect(r.notice).toContain('recovery key');
    expect(await crypto.keyInfo()).toMatchObject({ keyFingerprint: r.keyFingerprint, previousFingerprints: [] });
    // No chunk re-encrypted: the chunk set is the same.
    expect(storage.ids(OWNER, 'chunk').sort()).toEqual(chunksBefore);
    // Replacements replicated like any write (W = 2: at least one peer holds each by now).
    const replacements = await openable(storage, crypto);
    expect(replacements.size).toBe(manifestsBefore);
    for (const id of replacements.keys()) expect([P1, P2].some((p) => peers.stores.get(p)!.objects.has(`${OWNER}/manifest/${id}`))).toBe(true);
    for (const man of replacements.values()) expect(man.generation).toBe(1);

    expect({ list: vault.list(), a: vault.versions('a.bin'), gone: vault.versions('gone.txt') }).toEqual(before);
    expect((await readAll(vault.read('a.bin', 1, signal()))).equals(bodies.get('a.bin')![0]!)).toBe(true);
    expect((await readAll(vault.read('a.bin', 2, signal()))).equals(bodies.get('a.bin')![1]!)).toBe(true);
    expect((await readAll(vault.read('a.bin', undefined, signal()))).equals(bodies.get('a.bin')![0]!)).toBe(true);
    expect((await readAll(vault.read('b/c.txt', undefined, signal()))).equals(bodies.get('b/c.txt')![0]!)).toBe(true);
    // The deleted file's history survived the rotation: it can still be restored and read.
    await vault.restore('gone.txt', 1, signal());
    expect((await readAll(vault.read('gone.txt', undefined, signal()))).equals(bodies.get('gone.txt')![0]!)).toBe(true);

    // A restart loads only the replacements; the originals are counted as unreadable, quietly.
    const fresh = make(storage);
    const skipped: string[] = [];
    await fresh.loadIndex(signal(), (id) => skipped.push(id));
    expect(skipped).toEqual([]);
    expect(fresh.unreadableManifests()).toBe(manifestsBefore);
    expect(fresh.versions('a.bin')).toEqual(vault.versions('a.bin'));
    expect((await readAll(fresh.read('a.bin', 2, signal()))).equals(bodies.get('a.bin')![1]!)).toBe(true);
  });

  it('prefers the replacement while both still decrypt (retire failed), whatever the load order; a second rotation finishes the job', async () => {
    const { vault, crypto, storage, make } = setup();
    await vault.upload('x', undefined, once(seeded(CHUNK + 1, 7)), signal());
    await vault.upload('y', undefined, once(seeded(9, 8)), signal());
    const first = (await crypto.keyInfo()).keyFingerprint;
    const retire = crypto.retireVaultKey.bind(crypto);
    crypto.retireVaultKey = async () => {
      throw new Error('crypto-service went away');
    };
    await expect(vault.rotateKeys(signal())).rejects.toThrow('went away');
    const second = (await crypto.keyInfo()).keyFingerprint;
    expect((await crypto.keyInfo()).previousFingerprints).toEqual([first]);
    // Both the originals and their replacements open now.
    const all = await openable(storage, crypto);
    expect(all.size).toBe(4);
    // Reload from disk (any listing order): the index holds the replacements.
    for (const order of ['asc', 'desc'] as const) {
      const s2 = new MemoryStorage();
      const ids = storage.ids(OWNER, 'manifest').sort();
      if (order === 'desc') ids.reverse();
      for (const kind of ['chunk'] as const) for (const id of storage.ids(OWNER, kind)) await s2.put(OWNER, kind, id, await storage.get(OWNER, kind, id));
      for (const id of ids) await s2.put(OWNER, 'manifest', id, await storage.get(OWNER, 'manifest', id));
      const fresh = make(s2);
      await fresh.loadIndex(signal());
      for (const path of ['x', 'y']) {
        const rec = (fresh as unknown as { index: FileIndex }).index.find(path, 1)!;
        expect([path, order, all.get(rec.manifestId)?.generation]).toEqual([path, order, 1]);
      }
    }
    crypto.retireVaultKey = retire;
    const r = await vault.rotateKeys(signal());
    expect(r.retiredFingerprints.sort()).toEqual([first, second].sort());
    expect((await crypto.keyInfo()).previousFingerprints).toEqual([]);
    expect((await readAll(vault.read('x', undefined, signal()))).equals(seeded(CHUNK + 1, 7))).toBe(true);
    const left = await openable(storage, crypto);
    expect([...left.values()].map((m) => [m.path, m.generation]).sort()).toEqual([
      ['x', 2],
      ['y', 2],
    ]);
  });

  it('a write that began before the rotation commits under the new key, and the old key is retired only after it', async () => {
    const { vault, crypto } = setup();
    await vault.upload('early', undefined, once(seeded(100, 1)), signal());
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const body = seeded(3 * CHUNK, 2);
    async function* slow(): AsyncGenerator<Buffer> {
      yield body.subarray(0, CHUNK);
      await gate;
      yield body.subarray(CHUNK);
    }
    const upload = vault.upload('spanning', undefined, slow(), signal());
    // Let the upload create its data key and seal a chunk under the old key.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    const first = (await crypto.keyInfo()).keyFingerprint;
    let retired = false;
    const retire = crypto.retireVaultKey.bind(crypto);
    crypto.retireVaultKey = async (fp: string) => {
      retired = true;
      return retire(fp);
    };
    const rotation = vault.rotateKeys(signal());
    // The rotation re-wraps what exists, then waits for the upload before retiring.
    for (let i = 0; i < 50 && (await crypto.keyInfo()).keyFingerprint === first; i++) await new Promise((r) => setTimeout(r, 5));
    expect((await crypto.keyInfo()).keyFingerprint).not.toBe(first);
    await new Promise((r) => setTimeout(r, 50));
    expect(retired).toBe(false);
    release();
    await upload;
    const r = await rotation;
    expect(r.retiredFingerprints).toEqual([first]);
    expect((await readAll(vault.read('spanning', undefined, signal()))).equals(body)).toBe(true);
    expect((await readAll(vault.read('early', undefined, signal()))).equals(seeded(100, 1))).toBe(true);
  });

  it('refuses a second rotation while one runs (ABORTED), and rotates nothing without the write quorum (UNAVAILABLE)', async () => {
    const { vault, crypto, peers } = setup();
    await vault.upload('f', undefined, once(seeded(10, 1)), signal());
    const a = vault.rotateKeys(signal());
    await expect(vault.rotateKeys(signal())).rejects.toMatchObject({ name: 'AbortedError' });
    await a;
    expect(vault.list().map((f) => f.path)).toEqual(['f']);
    peers.down.add(P1);
    peers.down.add(P2);
    const rotations = crypto.rotations;
    await expect(vault.rotateKeys(signal())).rejects.toMatchObject({ name: 'UnavailableError' });
    expect(crypto.rotations).toBe(rotations);
  });
});

describe('Vault crypto-shredding', () => {
  it('after a shred, the version\'s manifest and chunks as a peer still holds them open under no key; live files read back identical; a wiped owner recovers every live file from its peers', async () => {
    const { vault, crypto, storage, peers, make } = setup();
    const secret = [seeded(2 * CHUNK + 3, 11), seeded(CHUNK, 12)];
    const keep = seeded(3 * CHUNK + 1, 13);
    await vault.upload('secret.txt', undefined, once(secret[0]!), signal());
    await vault.upload('secret.txt', undefined, once(secret[1]!), signal());
    await vault.upload('keep.bin', undefined, once(keep), signal());
    await vault.upload('other.bin', undefined, once(seeded(5, 14)), signal());
    await vault.deleteVersion('other.bin', 1, signal()); // removed earlier without shredding: shredded too now
    // What a peer that never deletes holds of the secret file: its manifests (with the wrapped data keys) and chunks.
    const p1 = peers.stores.get(P1)!;
    await new Promise((r) => setTimeout(r, 20)); // background copies (the third) land
    const held = [...(await openable(p1, crypto)).entries()].filter(([, m]) => m.path === 'secret.txt');
    expect(held.map(([, m]) => m.version).sort()).toEqual([1, 2]);
    const heldChunks = held.flatMap(([, m]) => m.chunks.map((c, i) => ({ m, id: c.id, index: i })));
    for (const c of heldChunks) expect(p1.objects.has(`${OWNER}/chunk/${c.id}`)).toBe(true);

    const r = await vault.shred('secret.txt', undefined, signal());
    expect(r.removed).toBe(2);
    expect(r.rotation.versionsShredded).toBe(3); // secret v1, v2 and other.bin v1
    // Left as garbage: the manifests replaced (keep, both removal records) and shredded (3); the shredded chunks (3 + 1 + 1).
    expect(r.rotation.garbage).toEqual({ manifests: r.rotation.manifestsRewritten + 3, chunks: 5, chunkBytes: 2 * CHUNK + 3 + CHUNK + 5 + 5 * 29, records: 0, deleted: 0 }); // no GC here: vault-gc.spec.ts
    expect(vault.list().map((f) => f.path)).toEqual(['keep.bin']);
    expect(() => vault.versions('secret.txt')).toThrow(expect.objectContaining({ name: 'NotFoundError' }));

    // The peer still holds every byte...
    for (const [id] of held) expect(p1.objects.has(`${OWNER}/manifest/${id}`)).toBe(true);
    // ...and the owner's own crypto opens none of it: not the manifests, not the chunks with the old wrapped keys.
    for (const [id] of held) await expect(crypto.openManifest(OWNER, p1.objects.get(`${OWNER}/manifest/${id}`)!)).rejects.toBeInstanceOf(DataLossError);
    for (const c of heldChunks) {
      const ctx = { folder: OWNER, fileId: Buffer.from(c.m.fileId, 'base64'), index: c.index, last: c.index === c.m.chunks.length - 1 };
      await expect(crypto.openChunk(Buffer.from(c.m.wrappedKey, 'base64'), ctx, p1.objects.get(`${OWNER}/chunk/${c.id}`)!)).rejects.toBeInstanceOf(DataLossError);
      await expect(crypto.rewrapDataKey(OWNER, Buffer.from(c.m.wrappedKey, 'base64'))).rejects.toBeInstanceOf(DataLossError);
    }
    // No manifest anywhere that opens names the secret file, except the removal record (no key, no chunks).
    for (const store of [storage, p1, peers.stores.get(P2)!]) {
      for (const m of (await openable(store, crypto)).values()) if (m.path === 'secret.txt') expect(m).toMatchObject({ deleted: true, wrappedKey: '', chunks: [] });
    }
    expect((await readAll(vault.read('keep.bin', undefined, signal()))).equals(keep)).toBe(true);

    // The owner loses its disk; with the same (rotated) key it recovers every live file from its peers.
    const revived = make(new MemoryStorage());
    const st = await revived.recovery.start('request').done;
    expect(st).toMatchObject({ phase: 'done', errors: 0, files: 1, chunksMissing: 0 });
    expect(revived.unreadableManifests()).toBeGreaterThan(0);
    expect(revived.list().map((f) => f.path)).toEqual(['keep.bin']);
    expect((await readAll(revived.read('keep.bin', undefined, signal()))).equals(keep)).toBe(true);
    // The removal record keeps the version numbers: a new upload does not reuse one.
    expect((await revived.upload('secret.txt', undefined, once(Buffer.from('new')), signal())).version).toBe(4);
  });

  it('a shred asked while a rotation runs waits for it, then runs its own rotation that leaves the version out', async () => {
    const { vault, crypto } = setup();
    await vault.upload('s', undefined, once(Buffer.from('secret')), signal());
    await vault.upload('k', undefined, once(Buffer.from('kept')), signal());
    const first = vault.rotateKeys(signal());
    const shred = vault.shred('s', undefined, signal());
    const [r1, r2] = await Promise.all([first, shred]);
    expect(crypto.rotations).toBe(2);
    expect(r1.versionsShredded).toBe(0);
    expect([r2.removed, r2.rotation.versionsShredded]).toEqual([1, 1]);
    expect(r2.rotation.retiredFingerprints).toEqual([r1.keyFingerprint]);
    expect(vault.list().map((f) => f.path)).toEqual(['k']);
  });

  it('repairs a manifest corrupt locally from a peer at index load; refuses to rotate while a manifest is unreadable everywhere', async () => {
    const { vault, crypto, storage, peers, make } = setup();
    await vault.upload('m1', undefined, once(Buffer.from('one')), signal());
    await vault.upload('m2', undefined, once(Buffer.from('two')), signal());
    await new Promise((r) => setTimeout(r, 20));
    const [id1, id2] = storage.ids(OWNER, 'manifest');
    // id1 is corrupt here only: repaired from a peer while the index loads.
    storage.objects.get(`${OWNER}/manifest/${id1}`)![0]! ^= 1;
    // id2 is corrupt here and gone from both peers: nothing can read it.
    const good2 = Buffer.from(storage.objects.get(`${OWNER}/manifest/${id2}`)!);
    storage.objects.get(`${OWNER}/manifest/${id2}`)![0]! ^= 1;
    for (const p of [P1, P2]) peers.stores.get(p)!.objects.delete(`${OWNER}/manifest/${id2}`);
    const fresh = make(storage);
    const skipped: string[] = [];
    await fresh.loadIndex(signal(), (id) => skipped.push(id));
    expect(skipped).toEqual([id2]);
    expect(fresh.list()).toHaveLength(1);
    const rotations = crypto.rotations;
    await expect(fresh.rotateKeys(signal())).rejects.toMatchObject({ name: 'FailedPreconditionError' });
    expect(crypto.rotations).toBe(rotations);
    // A peer that comes back with a good copy: anti-entropy fetches and indexes it, which lifts the refusal.
    await peers.stores.get(P1)!.put(OWNER, 'manifest', id2!, good2);
    await fresh.syncFrom(P1, signal());
    expect(fresh.list()).toHaveLength(2);
    await fresh.rotateKeys(signal());
    expect((await readAll(fresh.read('m2', undefined, signal()))).toString()).toBe('two');
  });

  it('counts as garbage only chunks no kept version references (a restore shares its chunks)', async () => {
    const { vault } = setup();
    const body = seeded(2 * CHUNK, 21);
    await vault.upload('r.bin', undefined, once(body), signal());
    await vault.restore('r.bin', 1, signal()); // v2: the same chunks as v1
    const r = await vault.shred('r.bin', 1, signal());
    expect(r.rotation.garbage).toEqual({ manifests: r.rotation.manifestsRewritten + 1, chunks: 0, chunkBytes: 0, records: 0, deleted: 0 });
    expect((await readAll(vault.read('r.bin', undefined, signal()))).equals(body)).toBe(true);
    const all = await vault.shred('r.bin', undefined, signal());
    expect(all.rotation.garbage).toMatchObject({ chunks: 2, chunkBytes: 2 * CHUNK + 2 * 29 });
  });

  it('shreds one version: the others stay readable', async () => {
    const { vault } = setup();
    await vault.upload('v.txt', undefined, once(Buffer.from('one')), signal());
    await vault.upload('v.txt', undefined, once(Buffer.from('two')), signal());
    const r = await vault.shred('v.txt', 2, signal());
    expect([r.removed, r.rotation.versionsShredded]).toEqual([1, 1]);
    expect(vault.versions('v.txt').map((v) => v.version)).toEqual([1]);
    expect((await readAll(vault.read('v.txt', undefined, signal()))).toString()).toBe('one');
    await expect(vault.shred('v.txt', 9, signal())).rejects.toMatchObject({ name: 'NotFoundError' });
    await expect(vault.shred('nope', undefined, signal())).rejects.toMatchObject({ name: 'NotFoundError' });
  });
});
