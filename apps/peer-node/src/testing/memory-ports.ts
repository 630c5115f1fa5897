/**
 * In-memory implementations of the Vault's ports, for domain tests. They keep the contracts the real
 * services keep (hash verified on put, DataLoss on a corrupt read, AEAD with bound context) so the
 * Vault is tested against honest collaborators.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { DataLossError, FailedPreconditionError, NotFoundError, UnavailableError } from '@distri-vault/shared';
import { OBJECT_KINDS, type ChunkContext, type CryptoPort, type FolderInventory, type FolderSyncer, type InventoryPort, type ObjectKind, type PeersPort, type ReplicaSession, type StoragePort, type StoredObject, type SyncOptions, type SyncResult, type SyncSink } from '../domain/ports';
import { BucketSet, coverageFor } from '../domain/summary';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A content-addressed store in a Map. */
export class MemoryStorage implements StoragePort {
  readonly objects = new Map<string, Buffer>();
  private key(folder: string, kind: ObjectKind, id: string) {
    return `${folder}/${kind}/${id}`;
  }
  async put(folder: string, kind: ObjectKind, id: string, data: Buffer): Promise<boolean> {
    if (sha(data) !== id) throw new DataLossError('hash mismatch');
    const k = this.key(folder, kind, id);
    if (this.objects.has(k)) return false;
    this.objects.set(k, Buffer.from(data));
    return true;
  }
  async get(folder: string, kind: ObjectKind, id: string): Promise<Buffer> {
    const d = this.objects.get(this.key(folder, kind, id));
    if (!d) throw new NotFoundError('absent');
    if (sha(d) !== id) {
      // Like the storage-service: a corrupt object is quarantined (removed) so a repair can put it again.
      this.objects.delete(this.key(folder, kind, id));
      throw new DataLossError('corrupt');
    }
    return d;
  }
  async has(folder: string, kind: ObjectKind, ids: string[]): Promise<boolean[]> {
    return ids.map((id) => this.objects.has(this.key(folder, kind, id)));
  }
  async *list(folder: string, kind: ObjectKind): AsyncIterable<string[]> {
    const prefix = `${folder}/${kind}/`;
    const ids = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)).sort();
    for (let i = 0; i < ids.length; i += 3) yield ids.slice(i, i + 3);
  }
  async delete(folder: string, kind: ObjectKind, id: string): Promise<boolean> {
    return this.objects.delete(this.key(folder, kind, id));
  }
  async listFolders(): Promise<string[]> {
    return [...new Set([...this.objects.keys()].map((k) => k.split('/')[0]!))].sort();
  }
  ids(folder: string, kind: ObjectKind): string[] {
    const prefix = `${folder}/${kind}/`;
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }
}

/**
 * AES-256-GCM with a keyring of vault keys (the first is current), like the crypto-service: opening tries
 * every key; rotate/retire change the ring; chunk context bound as associated data.
 */
export class MemoryCrypto implements CryptoPort {
  /** The keyring, current first. */
  readonly keks: { fp: string; key: Buffer; createdUnixMs: number }[] = [MemoryCrypto.newKey()];
  /** Rotation calls seen. */
  rotations = 0;
  private static newKey() {
    const key = randomBytes(32);
    return { key, fp: sha(key).slice(0, 16), createdUnixMs: Date.now() };
  }
  private get kek(): Buffer {
    return this.keks[0]!.key;
  }
  private seal(key: Buffer, aad: Buffer, plain: Buffer) {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, nonce).setAAD(aad);
    const ct = Buffer.concat([Buffer.from([1]), nonce, c.update(plain), c.final(), c.getAuthTag()]);
    return ct;
  }
  private open(key: Buffer, aad: Buffer, env: Buffer) {
    try {
      const d = createDecipheriv('aes-256-gcm', key, env.subarray(1, 13)).setAAD(aad);
      d.setAuthTag(env.subarray(env.length - 16));
      return Buffer.concat([d.update(env.subarray(13, env.length - 16)), d.final()]);
    } catch (err) {
      throw new DataLossError('authentication failed', { cause: err });
    }
  }
  /** Opens with the first key of the ring that authenticates. */
  private openAny(aad: Buffer, env: Buffer) {
    let first: unknown;
    for (const k of this.keks) {
      try {
        return this.open(k.key, aad, env);
      } catch (err) {
        first ??= err;
      }
    }
    throw first;
  }
  private aad(ctx: ChunkContext) {
    const b = Buffer.alloc(5);
    b.writeUInt32BE(ctx.index);
    b[4] = ctx.last ? 1 : 0;
    return Buffer.concat([Buffer.from(ctx.folder), ctx.fileId, b]);
  }
  async createDataKey(folder: string) {
    return this.seal(this.kek, Buffer.from(folder), randomBytes(32));
  }
  async sealChunk(wrapped: Buffer, ctx: ChunkContext, plain: Buffer) {
    const ct = this.seal(this.openAny(Buffer.from(ctx.folder), wrapped), this.aad(ctx), plain);
    return { id: sha(ct), ciphertext: ct };
  }
  async openChunk(wrapped: Buffer, ctx: ChunkContext, ct: Buffer) {
    return this.open(this.openAny(Buffer.from(ctx.folder), wrapped), this.aad(ctx), ct);
  }
  async sealManifest(folder: string, plain: Buffer) {
    const ct = this.seal(this.kek, Buffer.from('m' + folder), plain);
    return { id: sha(ct), ciphertext: ct };
  }
  async openManifest(folder: string, ct: Buffer) {
    return this.openAny(Buffer.from('m' + folder), ct);
  }
  async keyInfo() {
    return { keyFingerprint: this.keks[0]!.fp, createdUnixMs: this.keks[0]!.createdUnixMs, previousFingerprints: this.keks.slice(1).map((k) => k.fp) };
  }
  async rewrapDataKey(folder: string, wrapped: Buffer) {
    const raw = this.openAny(Buffer.from(folder), wrapped);
    return this.seal(this.kek, Buffer.from(folder), raw);
  }
  async rotateVaultKey() {
    this.rotations++;
    const previousFingerprint = this.keks[0]!.fp;
    this.keks.unshift(MemoryCrypto.newKey());
    return { keyFingerprint: this.keks[0]!.fp, previousFingerprint };
  }
  async retireVaultKey(fp: string) {
    const i = this.keks.findIndex((k) => k.fp === fp);
    if (i <= 0) throw new FailedPreconditionError(`cannot retire ${fp}`);
    this.keks.splice(i, 1);
    return this.keks.slice(1).map((k) => k.fp);
  }
}

/** Peers that are each a MemoryStorage; `down` ones refuse everything; `held` ones wait before storing. */
export class MemoryPeers implements PeersPort, FolderSyncer, InventoryPort {
  readonly stores = new Map<string, MemoryStorage>();
  readonly down = new Set<string>();
  /** Per peer: called instead of a plain lookup by fetch (slow or malicious holders in tests). */
  readonly fetchHooks = new Map<string, (id: string, signal?: AbortSignal) => Promise<Buffer | null>>();
  /** Every fetch, in order: [peer, id]. */
  readonly fetches: [string, string][] = [];
  /** Peers whose stores wait for this promise before each put (a slow peer). */
  readonly held = new Map<string, Promise<void>>();
  /** Every object received, as `peer/folder/kind/id`, in order (duplicates included). */
  readonly received: string[] = [];
  /** Makes `peerId` wait before storing anything until the returned function is called. */
  hold(peerId: string): () => void {
    let release!: () => void;
    this.held.set(peerId, new Promise<void>((r) => (release = r)));
    return () => {
      this.held.delete(peerId);
      release();
    };
  }
  constructor(ids: string[]) {
    for (const id of ids) this.stores.set(id, new MemoryStorage());
  }
  connected(): string[] {
    return [...this.stores.keys()].filter((id) => !this.down.has(id)).sort();
  }
  private store(id: string): MemoryStorage {
    if (this.down.has(id)) throw new UnavailableError('down');
    return this.stores.get(id)!;
  }
  async openReplica(peerId: string, folder: string): Promise<ReplicaSession> {
    const s = this.store(peerId);
    return {
      peerId,
      send: async (obj: StoredObject) => {
        const gate = this.held.get(peerId);
        if (gate) await gate;
        if (this.down.has(peerId)) throw new UnavailableError('down');
        this.received.push(`${peerId}/${folder}/${obj.kind}/${obj.id}`);
        await s.put(folder, obj.kind, obj.id, obj.data);
      },
      close: async () => undefined,
      abort: () => undefined,
    };
  }
  /** Number of inventories read, per peer. */
  readonly inventories = new Map<string, number>();
  async inventory(peerId: string, folder: string): Promise<FolderInventory> {
    const s = this.store(peerId);
    this.inventories.set(peerId, (this.inventories.get(peerId) ?? 0) + 1);
    return { chunk: new Set(s.ids(folder, 'chunk')), manifest: new Set(s.ids(folder, 'manifest')), gc: new Set(s.ids(folder, 'gc')) };
  }
  async fetch(peerId: string, folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<Buffer | null> {
    this.fetches.push([peerId, id]);
    const hook = this.fetchHooks.get(peerId);
    if (hook) return hook(id, signal);
    const d = this.store(peerId).objects.get(`${folder}/${kind}/${id}`);
    return d ? Buffer.from(d) : null;
  }
  /** Like the gRPC responder: with a summary, lists only the buckets that differ. */
  async syncFolder(peerId: string, folder: string, sink: SyncSink, _signal?: AbortSignal, options: SyncOptions = {}): Promise<SyncResult> {
    const s = this.store(peerId);
    const r: SyncResult = { offered: 0, fetched: 0, bytes: 0, missing: 0 };
    let covered: BucketSet | undefined;
    if (options.summary) {
      const buckets = await coverageFor(options.summary, (kind) => s.list(folder, kind));
      sink.coverage?.(options.summary.bits, buckets);
      covered = new BucketSet(options.summary.bits, buckets);
      r.coveredBuckets = buckets.length;
    }
    for (const kind of OBJECT_KINDS) {
      for await (const all of s.list(folder, kind)) {
        const ids = covered ? all.filter((id) => covered.has(kind, id)) : all;
        if (!ids.length) continue;
        r.offered += ids.length;
        for (const id of await sink.missing(kind, ids)) {
          const data = await s.get(folder, kind, id);
          await sink.accept({ kind, id, data });
          r.fetched++;
          r.bytes += data.length;
        }
      }
    }
    return r;
  }
}
