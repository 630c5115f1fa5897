/**
 * Garbage collection in the owner's Vault: a rotation after a shred writes GC records naming exactly the
 * garbage (the manifests it replaced, the shredded versions' manifests, the chunks only they referenced),
 * places them with quorum like a manifest, and deletes that garbage from the owner's disk; a wiped owner's
 * recovery fetches the records and none of the garbage its peers still hold.
 */
import { generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { Vault } from './vault';
import { Garbage, openGcRecord } from './garbage';
import { serverIdOf } from './identity';
import { MemoryCrypto, MemoryPeers, MemoryStorage } from '../testing/memory-ports';
import { once, seeded, readAll } from '../testing/bytes';
import { decodeManifest } from './manifest';
import type { ObjectKind } from './ports';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const rawKey = Buffer.from(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
const signer = { serverId: serverIdOf(rawKey), publicKey: rawKey, privateKey };
const OWNER = signer.serverId;
const P1 = 'p1'.padEnd(32, 'b');
const P2 = 'p2'.padEnd(32, 'c');
const CHUNK = 4096;
const signal = () => new AbortController().signal;
const log = pino({ level: 'silent' });

function setup() {
  const crypto = new MemoryCrypto();
  const peers = new MemoryPeers([P1, P2]);
  const make = (s: MemoryStorage) => new Vault({ storage: s, crypto, peers, log, gc: { garbage: new Garbage({ storage: s, log }), signer } }, { serverId: OWNER, chunkSize: CHUNK, replicas: 3, window: 3, recoveryLogMs: 100 });
  const storage = new MemoryStorage();
  return { storage, crypto, peers, vault: make(storage), make };
}

/** The manifests of the owner's folder in `store` that `crypto` opens / does not open. */
async function manifests(store: MemoryStorage, crypto: MemoryCrypto) {
  const open: string[] = [];
  const sealed: string[] = [];
  for (const id of store.ids(OWNER, 'manifest')) {
    try {
      decodeManifest(await crypto.openManifest(OWNER, await store.get(OWNER, 'manifest', id)));
      open.push(id);
    } catch {
      sealed.push(id);
    }
  }
  return { open, sealed };
}

describe('Vault garbage collection', () => {
  it('a shred writes GC records naming exactly its garbage, with quorum, and deletes it from the owner\'s disk; a wiped owner recovers without fetching any of it', async () => {
    const { vault, crypto, storage, peers, make } = setup();
    const keep = seeded(3 * CHUNK + 1, 13);
    await vault.upload('secret.txt', undefined, once(seeded(2 * CHUNK + 3, 11)), signal());
    await vault.upload('secret.txt', undefined, once(seeded(CHUNK, 12)), signal());
    await vault.upload('keep.bin', undefined, once(keep), signal());
    await vault.upload('shared.bin', undefined, once(seeded(CHUNK + 7, 14)), signal());
    await vault.restore('shared.bin', 1, signal()); // v2 shares v1's chunks
    await new Promise((r) => setTimeout(r, 20)); // background copies land
    const chunksBefore = new Set(storage.ids(OWNER, 'chunk'));
    const manifestsBefore = new Set(storage.ids(OWNER, 'manifest'));

    const shredSecret = await vault.shred('secret.txt', undefined, signal());
    const shredShared = await vault.shred('shared.bin', 1, signal()); // v1 only: its chunks stay (v2 uses them)
    for (const r of [shredSecret, shredShared]) expect(r.rotation.garbage.records).toBe(1);
    expect(shredSecret.rotation.garbage).toMatchObject({ chunks: 4, manifests: shredSecret.rotation.manifestsRewritten + 2 });
    expect(shredShared.rotation.garbage).toMatchObject({ chunks: 0 });

    // The owner's disk: every manifest left opens, every chunk left is referenced by a live version.
    const mine = await manifests(storage, crypto);
    expect(mine.sealed).toEqual([]);
    const referenced = new Set<string>();
    for (const id of mine.open) for (const c of decodeManifest(await crypto.openManifest(OWNER, await storage.get(OWNER, 'manifest', id))).chunks) referenced.add(c.id);
    expect(storage.ids(OWNER, 'chunk').filter((c) => !referenced.has(c))).toEqual([]);
    // What went: 4 secret chunks; kept chunks are all still here.
    const gone = [...chunksBefore].filter((c) => !storage.ids(OWNER, 'chunk').includes(c));
    expect(gone).toHaveLength(4);
    expect(storage.ids(OWNER, 'manifest').filter((m) => manifestsBefore.has(m))).toEqual([]); // every old manifest was replaced or shredded

    // The records: on the owner and, with quorum, on the peers; each names only this folder's garbage.
    const records = storage.ids(OWNER, 'gc');
    expect(records).toHaveLength(2);
    const named = records.map((id) => openGcRecord(OWNER, storage.objects.get(`${OWNER}/gc/${id}`)!));
    expect(new Set(named.flatMap((r) => r.chunks))).toEqual(new Set(gone));
    // Only replaced or shredded manifests (every one written before the second shred's rotation), never a live one.
    const namedManifests = named.flatMap((r) => r.manifests);
    expect(namedManifests.filter((m) => mine.open.includes(m))).toEqual([]);
    expect([...manifestsBefore].filter((m) => !namedManifests.includes(m))).toEqual([]);
    for (const p of [P1, P2]) expect(peers.stores.get(p)!.ids(OWNER, 'gc').sort()).toEqual([...records].sort());
    // The peers (memory stores: they apply nothing) still hold the garbage.
    expect(peers.stores.get(P1)!.ids(OWNER, 'chunk').filter((c) => gone.includes(c)).length).toBeGreaterThan(0);

    expect((await readAll(vault.read('keep.bin', undefined, signal()))).equals(keep)).toBe(true);
    expect((await readAll(vault.read('shared.bin', undefined, signal()))).equals(seeded(CHUNK + 7, 14))).toBe(true);

    // A wiped owner recovers from peers that still hold the garbage: it fetches the records first and
    // none of what they name.
    const fresh = new MemoryStorage();
    const revived = make(fresh);
    const st = await revived.recovery.start('request').done;
    expect(st).toMatchObject({ phase: 'done', errors: 0, files: 2, chunksMissing: 0 });
    expect(fresh.ids(OWNER, 'gc').sort()).toEqual([...records].sort());
    expect(fresh.ids(OWNER, 'chunk').filter((c) => gone.includes(c))).toEqual([]);
    expect((await manifests(fresh, crypto)).sealed).toEqual([]);
    expect(revived.unreadableManifests()).toBe(0);
    expect((await readAll(revived.read('keep.bin', undefined, signal()))).equals(keep)).toBe(true);
    // A rotation now names nothing new (the garbage is tombstoned already): no empty or repeated record.
    const again = await revived.rotateKeys(signal());
    expect(again.garbage.records).toBe(1); // the manifests this rotation replaced
    expect(openGcRecord(OWNER, fresh.objects.get(`${OWNER}/gc/${fresh.ids(OWNER, 'gc').find((id) => !records.includes(id))}`)!).chunks).toEqual([]);
  });

  it('removing a version collects the chunks only removed versions reference, at once; the next rotation names only the manifests', async () => {
    const { vault, crypto, storage, peers } = setup();
    const v1 = seeded(2 * CHUNK + 1, 21);
    const v2 = seeded(CHUNK + 2, 22);
    await vault.upload('doc', undefined, once(v1), signal());
    const first = storage.ids(OWNER, 'chunk');
    await vault.upload('doc', undefined, once(v2), signal());
    await vault.restore('doc', 1, signal()); // v3 = v1's chunks
    await new Promise((r) => setTimeout(r, 20));
    // Removing v1 frees nothing: v3 still uses its chunks.
    expect(await vault.deleteVersion('doc', 1, signal())).toBe(1);
    expect(storage.ids(OWNER, 'gc')).toEqual([]);
    expect(storage.ids(OWNER, 'chunk')).toEqual(expect.arrayContaining(first));
    // Removing v2 frees v2's two chunks, on the owner now and with a record on both peers.
    const v2Chunks = storage.ids(OWNER, 'chunk').filter((c) => !first.includes(c));
    expect(v2Chunks).toHaveLength(2);
    expect(await vault.deleteVersion('doc', 2, signal())).toBe(1);
    const [rec] = storage.ids(OWNER, 'gc');
    expect(openGcRecord(OWNER, storage.objects.get(`${OWNER}/gc/${rec}`)!)).toMatchObject({ chunks: [...v2Chunks].sort(), manifests: [] });
    expect(storage.ids(OWNER, 'chunk').sort()).toEqual([...first].sort());
    for (const p of [P1, P2]) expect(peers.stores.get(p)!.ids(OWNER, 'gc')).toEqual([rec]);
    expect((await readAll(vault.read('doc', undefined, signal()))).equals(v1)).toBe(true);
    // The rotation shreds the removed versions: its record names their manifests and no chunk again.
    const rot = await vault.rotateKeys(signal());
    expect(rot.garbage).toMatchObject({ chunks: 0, records: 1 });
    const second = storage.ids(OWNER, 'gc').find((id) => id !== rec)!;
    expect(openGcRecord(OWNER, storage.objects.get(`${OWNER}/gc/${second}`)!).chunks).toEqual([]);
    expect((await manifests(storage, crypto)).sealed).toEqual([]);
    expect((await readAll(vault.read('doc', undefined, signal()))).equals(v1)).toBe(true);
  });

  it('a failed upload leaves nothing: a body longer than announced, a client stream that breaks, a manifest without its quorum — each one\'s chunks (and manifest) collected on every node', async () => {
    const { vault, storage, peers } = setup();
    const keep = seeded(2 * CHUNK + 5, 41);
    await vault.upload('keep', undefined, once(keep), signal());
    await new Promise((r) => setTimeout(r, 20));
    const baseline = { chunks: storage.ids(OWNER, 'chunk').sort(), manifests: storage.ids(OWNER, 'manifest').sort() };
    const named = () => storage.ids(OWNER, 'gc').map((id) => openGcRecord(OWNER, storage.objects.get(`${OWNER}/gc/${id}`)!));
    // The record the last step wrote: [chunks, manifests] it names.
    let seen: string[] = [];
    const newest = () => {
      const fresh = storage.ids(OWNER, 'gc').filter((id) => !seen.includes(id));
      seen = storage.ids(OWNER, 'gc');
      expect(fresh).toHaveLength(1);
      const r = openGcRecord(OWNER, storage.objects.get(`${OWNER}/gc/${fresh[0]}`)!);
      return [r.chunks.length, r.manifests.length];
    };

    // 1. The body is longer than the header said: INVALID_ARGUMENT after its three chunks were placed.
    await expect(vault.upload('liar', 2 * CHUNK, once(seeded(3 * CHUNK, 42)), signal())).rejects.toMatchObject({ code: 'invalid_argument' });
    await vault.settleCollections();
    expect(newest()).toEqual([3, 0]);
    // 2. The client's stream breaks after two chunks.
    async function* broken() {
      yield seeded(3 * CHUNK, 43);
      await new Promise((r) => setTimeout(r, 10));
      throw new Error('client went away');
    }
    await expect(vault.upload('cut', undefined, broken(), signal())).rejects.toThrow('client went away');
    await vault.settleCollections();
    // The chunks cut before the break (the chunker holds the last one back until it sees the end).
    const [cutChunks, cutManifests] = newest();
    expect([cutChunks! >= 1, cutManifests]).toEqual([true, 0]);
    // 3. The manifest cannot get its quorum (both peers refuse manifests): its chunks and the manifest
    //    the owner already stored are collected.
    const puts = [P1, P2].map((p) => peers.stores.get(p)!.put.bind(peers.stores.get(p)!));
    [P1, P2].forEach((p, i) => {
      peers.stores.get(p)!.put = async (folder: string, kind: ObjectKind, id: string, data: Buffer) => {
        if (kind === 'manifest') throw new Error('disk on fire');
        return puts[i]!(folder, kind, id, data);
      };
    });
    await expect(vault.upload('noquorum', undefined, once(seeded(CHUNK + 1, 44)), signal())).rejects.toMatchObject({ code: 'unavailable' });
    await vault.settleCollections();
    [P1, P2].forEach((p, i) => (peers.stores.get(p)!.put = puts[i]!));
    expect(newest()).toEqual([2, 1]);
    const records = named();
    // The owner holds exactly what it held before the three failures; the named objects are no live ones.
    await new Promise((r) => setTimeout(r, 20));
    expect(storage.ids(OWNER, 'chunk').sort()).toEqual(baseline.chunks);
    expect(storage.ids(OWNER, 'manifest').sort()).toEqual(baseline.manifests);
    for (const r of records) for (const id of [...r.chunks, ...r.manifests]) expect([...baseline.chunks, ...baseline.manifests]).not.toContain(id);
    // Every record reached both peers (with quorum), and nothing of the failures became a version.
    for (const p of [P1, P2]) expect(peers.stores.get(p)!.ids(OWNER, 'gc').sort()).toEqual(storage.ids(OWNER, 'gc').sort());
    expect(vault.list().map((f) => f.path)).toEqual(['keep']);
    expect((await readAll(vault.read('keep', undefined, signal()))).equals(keep)).toBe(true);

    // Failures close together share one record (a client that keeps giving up makes no record per attempt).
    await Promise.all(
      [51, 52, 53].map((seed, i) => expect(vault.upload(`burst-${i}`, CHUNK, once(seeded(2 * CHUNK, seed)), signal())).rejects.toMatchObject({ code: 'invalid_argument' })),
    );
    await vault.settleCollections();
    expect(newest()).toEqual([6, 0]);
    expect(storage.ids(OWNER, 'chunk').sort()).toEqual(baseline.chunks);
  });

  it('a removal whose GC record cannot get its write quorum still stands; the next rotation collects the chunks', async () => {
    const { vault, storage, peers } = setup();
    await vault.upload('f', undefined, once(seeded(CHUNK, 31)), signal());
    await vault.upload('f', undefined, once(seeded(CHUNK, 32)), signal());
    await new Promise((r) => setTimeout(r, 20));
    const before = storage.ids(OWNER, 'chunk');
    // The history record needs the quorum too, so only the GC record's copies fail on both peers.
    const put = peers.stores.get(P1)!.put.bind(peers.stores.get(P1)!);
    const put2 = peers.stores.get(P2)!.put.bind(peers.stores.get(P2)!);
    for (const [p, orig] of [[P1, put], [P2, put2]] as const) {
      peers.stores.get(p)!.put = async (folder: string, kind: ObjectKind, id: string, data: Buffer) => {
        if (kind === 'gc') throw new Error('disk on fire');
        return orig(folder, kind, id, data);
      };
    }
    expect(await vault.deleteVersion('f', 1, signal())).toBe(1);
    expect(storage.ids(OWNER, 'chunk').sort()).toEqual([...before].sort());
    expect(vault.versions('f').map((v) => v.version)).toEqual([2]);
    peers.stores.get(P1)!.put = put;
    peers.stores.get(P2)!.put = put2;
    const rot = await vault.rotateKeys(signal());
    expect(rot.garbage).toMatchObject({ chunks: 1, records: 1 });
    expect(storage.ids(OWNER, 'chunk')).toHaveLength(1);
  });
});
