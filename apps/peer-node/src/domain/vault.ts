/**
 * The node's file operations on its own folder: put (chunk, encrypt, store, replicate), get (read,
 * verify, repair from peers, decrypt), list, delete, and recovery of the folder from peers.
 * Framework-free: everything outside comes through the ports.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { AbortedError, assertFilePath, DataLossError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, UnavailableError, CancelledError } from '@distri-vault/shared';
import { chunkStream } from './chunker';
import { FileIndex, type IndexedVersion } from './file-index';
import { hedgedFetch, holderOrder } from './hedge';
import { decodeManifest, encodeManifest, type ChunkRef, type Manifest } from './manifest';
import { OBJECT_KINDS, type CryptoPort, type FolderSyncer, type ObjectKind, type PeersPort, type StoragePort, type StoredObject, type SyncResult } from './ports';
import { sealGcRecords, type Garbage } from './garbage';
import { rank } from './placement';
import { ByteBudget } from './budget';
import { ReplicationBacklog, type ReplicationHandle } from './replication';
import { summarize, summaryBits, SyncDiff } from './summary';
import { Recovery, summaryOf, type RecoverySummary } from './recovery';
import { objectIdOf } from './object-id';

export type { RecoverySummary };

/** Resolves with `p`, or rejects with CancelledError when `signal` aborts first (p keeps running). */
function waitOrAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new CancelledError('cancelled'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError('cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A file version as clients see it. */
export interface FileInfo {
  path: string;
  version: number;
  size: number;
  sha256: string;
  updatedUnixMs: number;
  chunks: number;
  /** A deletion record (only in versions()). */
  deleted?: boolean;
}


/** Collaborators of a Vault. */
export interface VaultComponents {
  crypto: CryptoPort;
  storage: StoragePort;
  peers: PeersPort & FolderSyncer;
  log: Logger;
  /** Where copies owed to peers wait; the Vault makes its own when none is given. */
  replication?: ReplicationBacklog;
  /**
   * Garbage collection (domain/garbage.ts): this node's tombstones, and the owner's identity that signs
   * GC records. Without it a rotation leaves its garbage on the disks, as before GC existed (unit tests
   * whose folder is not derived from a key).
   */
  gc?: { garbage: Garbage; signer: { serverId: string; publicKey: Buffer; privateKey: KeyObject } };
}

/** Settings of a Vault. */
export interface VaultOptions {
  /** This node's server ID: the folder it owns. */
  serverId: string;
  /** Plaintext bytes per chunk. */
  chunkSize: number;
  /** Copies of every object, the owner's included. */
  replicas: number;
  /** Chunks in flight per upload or download. */
  window: number;
  /** Durable copies (the owner's included) a write waits for; default min(2, replicas). */
  writeQuorum?: number;
  /**
   * Longest one object of a write waits for its quorum of peer copies (default 60000): past it the write
   * fails UNAVAILABLE. A peer link that went silent (a black-holed path) otherwise held the write until the
   * connection's keepalive dropped it and the copy's resumptions gave up, over a minute later.
   */
  writeTimeoutMs?: number;
  /** Repair reads: how long one holder may take before the next is asked as well (default 300). */
  hedgeMs?: number;
  /** Interval of the progress log lines of a recovery (default 3000). */
  recoveryLogMs?: number;
  /**
   * Chunk bytes all uploads and downloads of the node may hold at once (domain/budget.ts); a chunk costs
   * twice its plaintext size (plaintext and ciphertext). Default 0: no limit (each transfer's window only).
   */
  memoryBudgetBytes?: number;
}

/** What one sync with one peer moved, and the difference it found. */
export interface SyncFromResult extends SyncResult {
  /** Manifests fetched. */
  manifests: number;
  /** Objects this node holds in the compared buckets that the peer lacks (summary syncs only). */
  peerLacks: number;
}

/** Called as a sync or a repair stores fetched objects. */
export type FetchProgress = (kind: ObjectKind, bytes: number) => void;

/** Progress of a check of live chunks. */
export interface ChunkCheck {
  checked: number;
  missing: number;
  fetched: number;
  bytes: number;
}


function infoOf(m: Manifest): FileInfo {
  const info: FileInfo = { path: m.path, version: m.version, size: m.size, sha256: m.sha256, updatedUnixMs: m.createdUnixMs, chunks: m.chunks.length };
  if (m.deleted) info.deleted = true;
  return info;
}

/** Runs tasks with at most `limit` in flight; the first failure aborts the rest and is rethrown. */
class Window {
  private readonly running = new Set<Promise<void>>();
  private failure: unknown;
  constructor(private readonly limit: number) {}
  async add(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    this.check();
    const p: Promise<void> = task().then(
      () => void this.running.delete(p),
      (err) => {
        this.failure ??= err;
        this.running.delete(p);
      },
    );
    this.running.add(p);
  }
  async drain(): Promise<void> {
    while (this.running.size) await Promise.race(this.running);
    this.check();
  }
  check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

/** Per-path mutual exclusion, so version numbers of one path never collide. */
class PathLocks {
  private readonly tails = new Map<string, Promise<void>>();
  async run<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(path) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(path, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(path) === tail) this.tails.delete(path);
    }
  }
}

/**
 * Shared/exclusive gate between manifest commits (shared) and the switch to a new vault key (exclusive):
 * no manifest is sealed while the key changes, so every commit knows which key it sealed under. A
 * waiting exclusive holder goes first: new shared holders wait behind it.
 */
class KeyGate {
  private readers = 0;
  private writer: Promise<void> | undefined;
  private readonly idle: Array<() => void> = [];
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    this.readers++;
    try {
      return await fn();
    } finally {
      if (--this.readers === 0) this.idle.splice(0).forEach((r) => r());
    }
  }
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    let done!: () => void;
    this.writer = new Promise<void>((r) => (done = r));
    try {
      while (this.readers > 0) await new Promise<void>((r) => this.idle.push(r));
      return await fn();
    } finally {
      this.writer = undefined;
      done();
    }
  }
}

/** What a vault-key rotation did. */
export interface RotationReport {
  /** The new current vault key. */
  keyFingerprint: string;
  /** Keys retired at the end (the one replaced, and any left by an unfinished earlier rotation). */
  retiredFingerprints: string[];
  /** Manifests rewritten with their data key re-wrapped (versions, deletion and history records). */
  manifestsRewritten: number;
  /** Versions left behind (removed from their history before the rotation): unreadable for good now. */
  versionsShredded: number;
  /**
   * What the rotation made unreadable garbage: the manifests it replaced and the shredded versions'
   * manifests, and the chunks only shredded versions referenced (not collected before), with their
   * ciphertext bytes.
   * `records`: the GC records written for them (0 without GC), `deleted`: the objects removed from this
   * node's disk; every peer deletes its copies when a record reaches it.
   */
  garbage: { manifests: number; chunks: number; chunkBytes: number; records: number; deleted: number };
  /** Wall time. */
  durationMs: number;
  /** What the owner must do now. */
  notice: string;
}

/**
 * The chunks a rotation leaves unreadable: referenced by a removed (shredded) version and by no kept one
 * (a restored version shares its chunks with the version it restored), and not `collected` already (a
 * GC record names it: removing a version collects its chunks at once). Bytes are ciphertext bytes.
 */
export function garbageOf(kept: IndexedVersion[], removed: IndexedVersion[], collected: (id: string) => boolean = () => false): { chunks: number; chunkBytes: number; chunkIds: string[] } {
  const live = new Set(kept.flatMap((v) => v.manifest.chunks.map((c) => c.id)));
  const dead = new Map<string, number>();
  for (const v of removed) for (const c of v.manifest.chunks) if (!live.has(c.id) && !collected(c.id)) dead.set(c.id, c.size + ENVELOPE_OVERHEAD_BYTES);
  let chunkBytes = 0;
  for (const b of dead.values()) chunkBytes += b;
  return { chunks: dead.size, chunkBytes, chunkIds: [...dead.keys()] };
}

/** Bytes a chunk envelope adds to its plaintext (version byte, nonce, tag: crypto-service envelope.ts). */
const ENVELOPE_OVERHEAD_BYTES = 29;

/** Told to the owner after every rotation. */
export const ROTATION_NOTICE =
  'the vault key changed: write down the NEW recovery key now (crypto-service: main.js export-recovery-key); the old recovery key no longer opens this vault';

/** Failed uploads within this long share one GC record for what they had placed. */
export const FAILED_UPLOAD_GC_DELAY_MS = 1000;

/** The owner's file operations. */
export class Vault {
  private index = new FileIndex();
  private readonly locks = new PathLocks();
  private readonly gate = new KeyGate();
  /** Bumped by each rotation: a write that began in an older epoch re-wraps its data key at commit. */
  private keyEpoch = 0;
  /** Writes in flight per key epoch: a rotation retires the old key only once the older ones finished. */
  private readonly inflight = new Map<number, number>();
  private readonly inflightDone: Array<() => void> = [];
  /** Collections of failed uploads under way, and the objects of the next one (collectFailedUpload). */
  private readonly collecting = new Set<Promise<void>>();
  private failedUploads: { chunks: string[]; manifests: string[]; paths: Set<string>; flush?: () => void } = { chunks: [], manifests: [], paths: new Set() };
  private rotating = false;
  /** Settles when the running rotation ends. */
  private rotationDone: Promise<unknown> = Promise.resolve();
  /** Manifests of the last index load that no key of the keyring opens (shredded or foreign). */
  private unreadable = 0;
  /**
   * Manifests of the last index load that could not be read for another reason (missing or corrupt here
   * and on every peer asked). A rotation refuses to run while there are any: it would not re-wrap them,
   * and its retire would make them unreadable for good.
   */
  private unindexed = new Set<string>();
  private readonly log: Logger;
  /** The recovery runner of this folder (status, start or join). */
  readonly recovery: Recovery;
  /** Copies owed to peers: tracked until acknowledged. */
  readonly replication: ReplicationBacklog;
  /** Chunk bytes in flight across all transfers (memoryBudgetBytes). */
  readonly budget: ByteBudget;

  constructor(
    private readonly c: VaultComponents,
    private readonly o: VaultOptions,
  ) {
    this.log = c.log;
    this.recovery = new Recovery(this, c.log, { logEveryMs: o.recoveryLogMs ?? 3000 });
    this.replication = c.replication ?? new ReplicationBacklog({ storage: c.storage, peers: c.peers, log: c.log }, { window: o.window });
    this.budget = new ByteBudget(o.memoryBudgetBytes ?? 0);
  }

  /**
   * Rebuilds the index from every manifest in the owner's folder: a new index is built aside and swapped
   * in when complete, so reads during the rebuild still see the old one. Returns the manifests loaded;
   * `onSkip` hears of each one that could not be read or decrypted.
   */
  async loadIndex(signal?: AbortSignal, onSkip?: (id: string, err: Error) => void): Promise<number> {
    const fresh = new FileIndex();
    let loaded = 0;
    const unreadable = { count: 0 };
    const unindexed = new Set<string>();
    const skip = (id: string, err: Error) => {
      unindexed.add(id);
      onSkip?.(id, err);
    };
    await this.c.gc?.garbage.load(this.o.serverId, signal);
    for await (const batch of this.c.storage.list(this.o.serverId, 'manifest', signal)) {
      for (const id of batch) {
        if (this.c.gc?.garbage.isDead(this.o.serverId, id)) continue;
        if (await this.indexManifest(id, undefined, signal, fresh, skip, unreadable)) loaded++;
      }
    }
    this.unreadable = unreadable.count;
    this.unindexed = unindexed;
    // One line for all of them: after a rotation every superseded or shredded manifest is in this count
    // for good (peers never delete them), so a line per object would repeat forever.
    if (unreadable.count) this.log.info({ manifests: unreadable.count }, 'manifests sealed under a retired or unknown vault key skipped (superseded by a rotation, or shredded)');
    // Manifests written while the rebuild ran (uploads) are in the old index only: carry them over.
    for (const v of this.index.all()) fresh.add(v.manifestId, v.manifest);
    this.index = fresh;
    return loaded;
  }

  /**
   * Decrypts one stored manifest into the index; false when it cannot be read. One that no key of the
   * keyring opens (DATA_LOSS from the crypto-service on bytes that matched their ID: sealed under a
   * retired key) is counted in `unreadable` quietly; any other failure is logged and reported to onSkip.
   */
  private async indexManifest(
    id: string,
    data: Buffer | undefined,
    signal?: AbortSignal,
    into = this.index,
    onSkip?: (id: string, err: Error) => void,
    unreadable?: { count: number },
  ): Promise<boolean> {
    try {
      // A copy missing or corrupt here is fetched from a peer (verified, written back) when one is connected.
      const bytes = data ?? (await this.readObject('manifest', id, signal ?? new AbortController().signal));
      let plain: Buffer;
      try {
        plain = await this.c.crypto.openManifest(this.o.serverId, bytes, signal);
      } catch (err) {
        if (!(err instanceof DataLossError) || signal?.aborted) throw err;
        if (unreadable) unreadable.count++;
        else this.unreadable++;
        this.log.debug({ manifest: id }, 'manifest sealed under a retired or unknown vault key skipped');
        return false;
      }
      into.add(id, decodeManifest(plain));
      // Read at last (fetched by anti-entropy, say): no longer a reason to refuse a rotation.
      this.unindexed.delete(id);
      return true;
    } catch (err) {
      if (signal?.aborted) throw err;
      this.log.warn({ manifest: id, err: (err as Error).message }, 'manifest skipped');
      onSkip?.(id, err as Error);
      return false;
    }
  }

  /** Latest live files under `prefix`. */
  list(prefix = ''): FileInfo[] {
    return this.index.list(prefix).map((v) => infoOf(v.manifest));
  }

  /** Number of live files. */
  fileCount(): number {
    return this.index.liveCount();
  }

  /** Manifests of the owner's folder no key opens any more (superseded by a rotation, or shredded). */
  unreadableManifests(): number {
    return this.unreadable;
  }

  /** Copies a write waits for, the owner's included. */
  get writeQuorum(): number {
    return Math.max(1, Math.min(this.o.writeQuorum ?? 2, this.o.replicas));
  }

  /** The peers of one write: the connected ones, or UNAVAILABLE when fewer than W-1 are connected. */
  private writePeers(): string[] {
    const need = this.writeQuorum - 1;
    const peers = this.c.peers.connected().filter((p) => p !== this.o.serverId);
    if (peers.length < need) {
      throw new UnavailableError(`cannot write ${this.writeQuorum} copies: ${peers.length} of the ${need} peers needed are connected`);
    }
    return peers;
  }

  /**
   * Stores one object on the owner's disk and queues its copies for its top R-1 connected peers (HRW);
   * resolves once W copies are durable (the owner's included). The other copies continue in the
   * background, tracked by the backlog; the bytes they hold are released here, so they are re-read from
   * the local store when sent. UNAVAILABLE when too many copies fail for the quorum.
   */
  private async place(obj: StoredObject, peers: string[], pending: Set<ReplicationHandle>, signal: AbortSignal): Promise<void> {
    const targets = rank(obj.id, this.o.serverId, peers, false).slice(0, this.o.replicas - 1);
    const local = this.c.storage.put(this.o.serverId, obj.kind, obj.id, obj.data, signal);
    const handles = targets.map((t) => this.replication.enqueue(t, { folder: this.o.serverId, kind: obj.kind, id: obj.id, size: obj.data.length, data: obj.data }));
    handles.forEach((h) => pending.add(h));
    const need = this.writeQuorum - 1;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const acked = new Promise<void>((resolve, reject) => {
        let ok = 0;
        let bad = 0;
        let lastErr: unknown;
        if (need <= 0) return resolve();
        for (const h of handles) {
          h.done.then(
            () => {
              if (++ok === need) resolve();
            },
            (err) => {
              lastErr = err;
              if (handles.length - ++bad < need) {
                reject(new UnavailableError(`cannot write ${this.writeQuorum} copies of ${obj.kind} ${obj.id}: ${bad} of ${handles.length} peer copies failed`, { cause: lastErr }));
              }
            },
          );
        }
      });
      acked.catch(() => undefined);
      const timeoutMs = this.o.writeTimeoutMs ?? 60_000;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new UnavailableError(`cannot write ${this.writeQuorum} copies of ${obj.kind} ${obj.id}: no quorum of peer copies within ${timeoutMs} ms`)), timeoutMs);
      });
      late.catch(() => undefined);
      acked.finally(() => clearTimeout(timer)).catch(() => undefined);
      const aborted = new Promise<never>((_, reject) => {
        const onAbort = () => reject(new CancelledError('write cancelled'));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
        acked.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => undefined);
      });
      aborted.catch(() => undefined);
      await Promise.all([local, Promise.race([acked, aborted, late])]);
    } finally {
      clearTimeout(timer);
      for (const h of handles) {
        h.release();
        h.done.then(
          () => pending.delete(h),
          () => pending.delete(h),
        );
      }
    }
  }

  /** Withdraws the copies of a failed write that were not sent yet. */
  private withdraw(pending: Set<ReplicationHandle>): void {
    for (const h of pending) h.cancel();
    pending.clear();
  }

  /**
   * Writes a manifest with quorum and adds it to the index. `keyEpoch` is the epoch in which its data key
   * was wrapped (undefined: unknown, e.g. copied from an older record): when a rotation happened since,
   * the key is re-wrapped under the current vault key first, so no manifest sealed under the new key
   * carries a data key only the old one opens. Runs in the key gate's shared side.
   */
  private async commitManifest(m: Manifest, peers: string[], pending: Set<ReplicationHandle>, signal: AbortSignal, keyEpoch?: number, onSealed?: (id: string) => void): Promise<FileInfo> {
    return this.gate.shared(async () => {
      if (m.wrappedKey && keyEpoch !== this.keyEpoch) {
        m = { ...m, wrappedKey: (await this.c.crypto.rewrapDataKey(this.o.serverId, Buffer.from(m.wrappedKey, 'base64'), signal)).toString('base64') };
      }
      const sealed = await this.c.crypto.sealManifest(this.o.serverId, encodeManifest(m), signal);
      onSealed?.(sealed.id);
      await this.place({ kind: 'manifest', id: sealed.id, data: sealed.ciphertext }, peers, pending, signal);
      this.index.add(sealed.id, m);
      return infoOf(m);
    });
  }

  /** Counts a write in flight in the current key epoch; call the returned function when it ends. */
  private beginWrite(): { epoch: number; end: () => void } {
    const epoch = this.keyEpoch;
    this.inflight.set(epoch, (this.inflight.get(epoch) ?? 0) + 1);
    let ended = false;
    return {
      epoch,
      end: () => {
        if (ended) return;
        ended = true;
        const n = (this.inflight.get(epoch) ?? 1) - 1;
        if (n > 0) this.inflight.set(epoch, n);
        else this.inflight.delete(epoch);
        this.inflightDone.splice(0).forEach((r) => r());
      },
    };
  }

  /** Waits until no write begun before `epoch` is in flight. */
  private async writesBefore(epoch: number, signal: AbortSignal): Promise<void> {
    while ([...this.inflight.keys()].some((e) => e < epoch)) {
      await waitOrAbort(new Promise<void>((r) => this.inflightDone.push(r)), signal);
    }
  }

  /**
   * Stores a new version of `path` from `data`. Resolves once every chunk and the manifest have W durable
   * copies (the owner's included); the remaining copies complete in the background (see `replication`).
   * On failure or cancellation no version becomes visible.
   */
  async upload(path: string, expectedSize: number | undefined, data: AsyncIterable<Buffer>, outer: AbortSignal): Promise<FileInfo> {
    assertFilePath(path);
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort(outer.reason);
    outer.addEventListener('abort', onAbort, { once: true });
    const signal = ctrl.signal;
    const started = Date.now();
    const pending = new Set<ReplicationHandle>();
    const write = this.beginWrite();
    // What this upload may have put on some disk: collected if it fails (collectFailedUpload).
    const placed = { chunks: [] as string[], manifests: [] as string[] };
    try {
      const peers = this.writePeers();
      const wrappedKey = await this.c.crypto.createDataKey(this.o.serverId, signal);
      const fileId = randomBytes(16);
      const hash = createHash('sha256');
      const chunks: ChunkRef[] = [];
      let size = 0;
      const window = new Window(this.o.window);
      for await (const chunk of chunkStream(data, this.o.chunkSize)) {
        if (signal.aborted) throw new CancelledError('upload cancelled');
        hash.update(chunk.data);
        size += chunk.data.length;
        // The node-wide budget first: while it is spent this loop reads no more of the client's stream.
        const give = await this.budget.take(2 * chunk.data.length, signal);
        try {
          await window.add(async () => {
            try {
              const ctx = { folder: this.o.serverId, fileId, index: chunk.index, last: chunk.last };
              const sealed = await this.c.crypto.sealChunk(wrappedKey, ctx, chunk.data, signal);
              placed.chunks.push(sealed.id);
              await this.place({ kind: 'chunk', id: sealed.id, data: sealed.ciphertext }, peers, pending, signal);
              chunks[chunk.index] = { id: sealed.id, size: chunk.data.length };
            } finally {
              give();
            }
          });
        } catch (err) {
          give();
          throw err;
        }
      }
      await window.drain();
      if (signal.aborted) throw new CancelledError('upload cancelled');
      if (expectedSize !== undefined && expectedSize !== size) {
        throw new InvalidArgumentError(`body has ${size} bytes, header announced ${expectedSize}`);
      }
      const info = await this.locks.run(path, () =>
        this.commitManifest(
          {
            format: 1,
            path,
            version: this.index.latestVersion(path) + 1,
            deleted: false,
            size,
            sha256: hash.digest('hex'),
            createdUnixMs: Date.now(),
            fileId: fileId.toString('base64'),
            wrappedKey: wrappedKey.toString('base64'),
            chunks,
          },
          peers,
          pending,
          signal,
          write.epoch,
          (id) => placed.manifests.push(id),
        ),
      );
      const backlog = this.replication.stats();
      this.log.info({ rpc: 'upload', version: info.version, bytes: size, chunks: chunks.length, ms: Date.now() - started, backlog: backlog.objects, backlogBytes: backlog.bytes }, 'stored');
      return info;
    } catch (err) {
      ctrl.abort(err);
      this.withdraw(pending);
      this.collectFailedUpload(path, placed);
      throw err;
    } finally {
      write.end();
      outer.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Collects what a failed or cancelled upload had placed: its chunks, and its manifest when the commit got
   * that far (no version was made visible, so nothing references them, and no other version can: each has
   * its own data key and file ID). A GC record, as for removed versions, written in the background so the
   * client gets its error at once; the failures of one `FAILED_UPLOAD_GC_DELAY_MS` share one record (a
   * client that keeps giving up does not make a record per attempt). Best effort: when the record cannot
   * get its write quorum (the upload may have failed for want of peers) the objects stay; their chunks are
   * unreadable without the manifest.
   */
  private collectFailedUpload(path: string, placed: { chunks: string[]; manifests: string[] }): void {
    if (!this.c.gc || (placed.chunks.length === 0 && placed.manifests.length === 0)) return;
    const batch = this.failedUploads;
    batch.chunks.push(...placed.chunks);
    batch.manifests.push(...placed.manifests);
    batch.paths.add(path);
    if (batch.flush) return;
    let flushNow!: () => void;
    const due = new Promise<void>((r) => (flushNow = r));
    const timer = setTimeout(flushNow, FAILED_UPLOAD_GC_DELAY_MS);
    batch.flush = flushNow;
    const work = (async () => {
      await due;
      clearTimeout(timer);
      this.failedUploads = { chunks: [], manifests: [], paths: new Set() };
      const what = { uploads: batch.paths.size, chunks: batch.chunks.length, manifests: batch.manifests.length };
      try {
        const signal = AbortSignal.timeout(this.o.writeTimeoutMs ?? 60_000);
        const records = await this.writeGcRecords(batch, this.writePeers(), signal);
        for (const r of records) await this.c.gc!.garbage.apply(this.o.serverId, r, signal);
        this.log.info(what, 'objects of failed uploads collected');
      } catch (err) {
        this.log.warn({ ...what, err: (err as Error).message }, 'objects of failed uploads not collected; they stay on disk');
      }
    })();
    this.collecting.add(work);
    void work.finally(() => this.collecting.delete(work));
  }

  /** Collects the failed uploads' objects gathered so far at once, and waits for every collection under way. */
  async settleCollections(): Promise<void> {
    this.failedUploads.flush?.();
    while (this.collecting.size) await Promise.all(this.collecting);
  }

  /** Records a deletion of `path` as a tombstone version. */
  async delete(path: string, signal: AbortSignal): Promise<number> {
    assertFilePath(path);
    if (!this.index.get(path)) throw new NotFoundError(`no such file: ${path}`);
    const info = await this.writeRecord(path, signal, () => {
      if (!this.index.get(path)) throw new NotFoundError(`no such file: ${path}`);
      return { format: 1, path, version: this.index.latestVersion(path) + 1, deleted: true, size: 0, sha256: '', createdUnixMs: Date.now(), fileId: '', wrappedKey: '', chunks: [] };
    });
    return info.version;
  }

  /** Every version of `path` still in its history, deletions included, oldest first; NotFoundError if none. */
  versions(path: string): FileInfo[] {
    assertFilePath(path);
    const list = this.index.versions(path);
    if (list.length === 0) throw new NotFoundError(`no such file: ${path}`);
    return list.map((v) => infoOf(v.manifest));
  }

  /**
   * Writes a new version of `path` with the content of `version`: a new manifest over the same chunks,
   * data key and file ID (chunks are bound to those, not to a version number), so no bytes are copied.
   */
  async restore(path: string, version: number, signal: AbortSignal): Promise<FileInfo> {
    assertFilePath(path);
    if (!this.index.get(path, version)) throw new NotFoundError(`no such version: ${path} v${version}`);
    return this.writeRecord(path, signal, () => {
      const old = this.index.get(path, version);
      if (!old) throw new NotFoundError(`no such version: ${path} v${version}`);
      const { generation: _g, ...content } = old.manifest;
      return { ...content, version: this.index.latestVersion(path) + 1, createdUnixMs: Date.now() };
    });
  }

  /**
   * Removes one version (or every version) of `path` from its history by writing a history record
   * naming them, then (with GC, unless `collect` is false) collects the chunks that only removed versions
   * reference: a GC record, so every node frees their space. The removed versions' manifests (small)
   * stay until the next rotation, which shreds them. Returns how many were removed.
   */
  async deleteVersion(path: string, version: number | 'all', signal: AbortSignal, collect = true): Promise<number> {
    assertFilePath(path);
    const pick = () => {
      const list = this.index.versions(path).map((v) => v.manifest.version);
      const removes = version === 'all' ? list : list.filter((v) => v === version);
      if (removes.length === 0) throw new NotFoundError(version === 'all' ? `no such file: ${path}` : `no such version: ${path} v${version}`);
      return removes;
    };
    pick();
    let count = 0;
    await this.writeRecord(path, signal, () => {
      const removes = pick();
      count = removes.length;
      const base = { format: 1 as const, path, deleted: true, size: 0, sha256: '', fileId: '', wrappedKey: '', chunks: [] };
      return { ...base, version: this.index.latestVersion(path) + 1, createdUnixMs: Date.now(), removes };
    });
    if (collect && this.c.gc) await this.collectRemovedChunks(signal);
    return count;
  }

  /**
   * Writes a GC record for the chunks only removed versions reference (all paths; those collected before
   * are left out) and deletes them here. Best effort: the removal stands if this fails (no write quorum
   * now, say), and the next rotation collects them.
   */
  private async collectRemovedChunks(signal: AbortSignal): Promise<void> {
    const { kept, removed } = this.index.keptAndRemoved();
    const chunks = garbageOf(kept, removed, (id) => this.c.gc!.garbage.isDead(this.o.serverId, id)).chunkIds;
    try {
      const records = await this.writeGcRecords({ manifests: [], chunks }, this.writePeers(), signal);
      for (const r of records) await this.c.gc!.garbage.apply(this.o.serverId, r, signal);
    } catch (err) {
      if (signal.aborted) throw err;
      this.log.warn({ err: (err as Error).message, chunks: chunks.length }, 'chunks of removed versions not collected now; the next rotation collects them');
    }
  }

  /** Commits the manifest `make()` builds (under the path's lock) with write quorum. */
  private async writeRecord(path: string, signal: AbortSignal, make: () => Manifest): Promise<FileInfo> {
    const peers = this.writePeers();
    const pending = new Set<ReplicationHandle>();
    try {
      return await this.locks.run(path, () => this.commitManifest(make(), peers, pending, signal));
    } catch (err) {
      this.withdraw(pending);
      throw err;
    }
  }

  /** Public facts of the vault key (from the crypto-service). */
  keyInfo(signal?: AbortSignal) {
    return this.c.crypto.keyInfo(signal);
  }

  /**
   * Rotates the vault key online and carries every kept version over to it:
   * 1. the crypto-service makes a new key current (durable before it answers), while no manifest is
   *    being sealed (key gate); writes that began before re-wrap their data key when they commit;
   * 2. every record the index keeps (live and history versions, deletion and history records) is
   *    rewritten as a replacement: data key re-wrapped (RewrapDataKey), `generation` + 1, sealed under
   *    the new key and placed with write quorum like any write. Versions removed from their history are
   *    left out. No chunk is touched;
   * 3. once writes begun before the rotation have finished, every previous key is retired: whatever
   *    only they sealed (the replaced manifests, the removed versions' data keys) is unreadable for good,
   *    on every disk that holds a copy.
   * A failure before step 3 retires nothing: the old key stays in the keyring (GetVaultKeyInfo lists it)
   * and a second rotation completes the job. ABORTED while another rotation runs.
   */
  async rotateKeys(signal: AbortSignal): Promise<RotationReport> {
    if (this.rotating) throw new AbortedError('a vault-key rotation is already running');
    this.rotating = true;
    const run = this.rotate(signal);
    this.rotationDone = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      this.rotating = false;
    }
  }

  private async rotate(signal: AbortSignal): Promise<RotationReport> {
    const started = Date.now();
    if (this.unindexed.size > 0) {
      throw new FailedPreconditionError(
        `${this.unindexed.size} manifests of this folder could not be read at the last index load (missing or corrupt here and on the peers asked); ` +
          'a rotation would make them unreadable for good: run a recovery first',
      );
    }
    const peers = this.writePeers();
    const rotated = await this.gate.exclusive(async () => {
      const r = await this.c.crypto.rotateVaultKey(signal);
      this.keyEpoch++;
      return r;
    });
    const epoch = this.keyEpoch;
    this.log.info({ fingerprint: rotated.keyFingerprint, previous: rotated.previousFingerprint }, 'vault key rotated; re-wrapping kept versions');
    const { kept, removed } = this.index.keptAndRemoved();
    const garbage = garbageOf(kept, removed, (id) => this.c.gc?.garbage.isDead(this.o.serverId, id) ?? false);
    let rewritten = 0;
    const replaced: string[] = [];
    const pending = new Set<ReplicationHandle>();
    const window = new Window(this.o.window);
    try {
      for (const v of kept) {
        await window.add(() =>
          this.locks.run(v.manifest.path, async () => {
            const cur = this.index.find(v.manifest.path, v.manifest.version);
            // Replaced meanwhile (a recovery's reload, or a removal record's carry-over): the replacement
            // was written in this epoch or is carried over below by its own record.
            if (!cur || cur.manifestId !== v.manifestId) return;
            await this.commitManifest({ ...cur.manifest, generation: (cur.manifest.generation ?? 0) + 1 }, peers, pending, signal);
            replaced.push(cur.manifestId);
            rewritten++;
          }),
        );
      }
      await window.drain();
    } catch (err) {
      this.withdraw(pending);
      throw err;
    }
    await this.writesBefore(epoch, signal);
    // The GC records go before the retire: afterwards a replaced manifest can no longer be told from any
    // other this node cannot open. Safe early: each replaced manifest's content is in its durable
    // replacement, and a shredded version is already out of the history.
    const records = this.c.gc ? await this.writeGcRecords({ manifests: [...replaced, ...removed.map((v) => v.manifestId)], chunks: garbage.chunkIds }, peers, signal) : [];
    const info = await this.c.crypto.keyInfo(signal);
    const retired: string[] = [];
    for (const fp of info.previousFingerprints) {
      await this.c.crypto.retireVaultKey(fp, signal);
      retired.push(fp);
    }
    // Shredded for good: out of the index too (a reload would not find them), so the next rotation does
    // not count them again.
    this.index.drop(new Set(removed.map((v) => v.manifestId)));
    let deleted = 0;
    for (const r of records) deleted += await this.c.gc!.garbage.apply(this.o.serverId, r, signal);
    const report: RotationReport = {
      keyFingerprint: info.keyFingerprint,
      retiredFingerprints: retired,
      manifestsRewritten: rewritten,
      versionsShredded: removed.length,
      garbage: { manifests: rewritten + removed.length, chunks: garbage.chunks, chunkBytes: garbage.chunkBytes, records: records.length, deleted },
      durationMs: Date.now() - started,
      notice: ROTATION_NOTICE,
    };
    this.log.info({ ...report, notice: undefined }, 'vault-key rotation done; previous keys retired');
    return report;
  }

  /**
   * Writes GC records naming this folder's garbage (IDs already tombstoned left out) with quorum, like a
   * manifest; the repair pass then spreads them to every member. Returns the records written.
   */
  private async writeGcRecords(garbage: { manifests: string[]; chunks: string[] }, peers: string[], signal: AbortSignal): Promise<StoredObject[]> {
    const { garbage: dead, signer } = this.c.gc!;
    const folder = this.o.serverId;
    const fresh = { manifests: dead.live(folder, garbage.manifests), chunks: dead.live(folder, garbage.chunks) };
    if (!fresh.manifests.length && !fresh.chunks.length) return [];
    const records = sealGcRecords(signer, fresh);
    const pending = new Set<ReplicationHandle>();
    try {
      for (const r of records) await this.place(r, peers, pending, signal);
    } catch (err) {
      this.withdraw(pending);
      throw err;
    }
    this.log.info({ records: records.map((r) => r.id), manifests: fresh.manifests.length, chunks: fresh.chunks.length }, 'GC records written');
    return records;
  }

  /**
   * Deletes `path` (every version, or one) with crypto-shredding: removes the versions from the history
   * (a history record, as deleteVersion), then rotates the vault key (rotateKeys), which leaves them out.
   * Returns how many versions were removed and the rotation's report.
   */
  async shred(path: string, version: number | undefined, signal: AbortSignal): Promise<{ removed: number; rotation: RotationReport }> {
    // No separate collection: the rotation below names these chunks in its own GC record.
    const removed = await this.deleteVersion(path, version ?? 'all', signal, false);
    // A rotation already running may have taken its snapshot before the removal: wait for it, then run
    // one that certainly leaves the removed versions out.
    for (;;) {
      while (this.rotating) await waitOrAbort(this.rotationDone, signal);
      try {
        return { removed, rotation: await this.rotateKeys(signal) };
      } catch (err) {
        if (!(err instanceof AbortedError)) throw err;
      }
    }
  }

  /** Looks up a version for download; NotFoundError when absent or deleted. */
  stat(path: string, version?: number): FileInfo {
    assertFilePath(path);
    const v = this.index.get(path, version);
    if (!v) throw new NotFoundError(version === undefined ? `no such file: ${path}` : `no such version: ${path} v${version}`);
    return infoOf(v.manifest);
  }

  /**
   * Streams the plaintext of a version, in order, with up to `window` chunks fetched ahead. Every chunk
   * is verified (hash, then AEAD); a chunk missing or corrupt locally is fetched from a peer and repaired.
   */
  async *read(path: string, version: number | undefined, signal: AbortSignal, offset = 0): AsyncGenerator<Buffer> {
    const v: IndexedVersion | undefined = this.index.get(path, version);
    if (!v) throw new NotFoundError(`no such file: ${path}`);
    const m = v.manifest;
    // From `offset`: whole chunks before it are skipped; the whole-file digest is then not checked (every
    // chunk read is still verified by its hash and AEAD tag, bound to its index).
    let skip = offset;
    let first = 0;
    while (first < m.chunks.length && skip >= m.chunks[first]!.size) skip -= m.chunks[first++]!.size;
    const fileId = Buffer.from(m.fileId, 'base64');
    const n = m.chunks.length;
    // The data key as the index holds it now: a rotation running during the read replaces it (same key,
    // re-wrapped) and then retires the old wrapping, so a read that spans it takes the new one, and
    // retries once when the old one stopped opening between the lookup and the call.
    const currentKey = () => this.index.find(path, m.version)?.manifest.wrappedKey ?? m.wrappedKey;
    const fetchPlain = async (i: number): Promise<Buffer> => {
      const ref = m.chunks[i]!;
      const ct = await this.readObject('chunk', ref.id, signal);
      const ctx = { folder: this.o.serverId, fileId, index: i, last: i === n - 1 };
      const key = currentKey();
      let plain: Buffer;
      try {
        plain = await this.c.crypto.openChunk(Buffer.from(key, 'base64'), ctx, ct, signal);
      } catch (err) {
        if (!(err instanceof DataLossError) || currentKey() === key) throw err;
        plain = await this.c.crypto.openChunk(Buffer.from(currentKey(), 'base64'), ctx, ct, signal);
      }
      if (plain.length !== ref.size) throw new DataLossError(`chunk ${i} of ${path} has ${plain.length} bytes, manifest says ${ref.size}`);
      return plain;
    };
    const ahead: Promise<Buffer>[] = [];
    let next = first;
    const hash = createHash('sha256');
    // Beyond the chunk the reader waits for, read ahead only while the node-wide budget has room. The budget
    // covers fetching and opening a chunk and is given back once its plaintext is ready, not when the reader
    // takes it: a reader that stalls keeps its own read-ahead (at most the window) but holds no budget that
    // other transfers wait for.
    const fill = () => {
      while (next < n && ahead.length < this.o.window) {
        const give = ahead.length ? this.budget.tryTake(2 * m.chunks[next]!.size) : () => undefined;
        if (!give) return;
        const p = fetchPlain(next++).finally(give);
        p.catch(() => undefined); // awaited in order below; this only silences early rejections
        ahead.push(p);
      }
    };
    fill();
    while (ahead.length) {
      const plain = await ahead.shift()!;
      fill();
      hash.update(plain);
      if (skip > 0) {
        yield plain.subarray(skip);
        skip = 0;
      } else yield plain;
    }
    if (offset === 0 && hash.digest('hex') !== m.sha256) throw new DataLossError(`${path} v${m.version}: plaintext digest mismatch`);
  }

  /** Reads an object of the owner's folder, repairing it from peers when missing or corrupt locally. */
  private async readObject(kind: ObjectKind, id: string, signal: AbortSignal, onFetch?: FetchProgress): Promise<Buffer> {
    try {
      return await this.c.storage.get(this.o.serverId, kind, id, signal);
    } catch (err) {
      if (!(err instanceof NotFoundError || err instanceof DataLossError)) throw err;
      this.log.warn({ chunk: id, kind, code: err.code }, 'local copy unusable; fetching from peers');
    }
    return this.repairObject(kind, id, signal, onFetch);
  }

  /**
   * Fetches an object of the owner's folder from its holders (hedged: see hedge.ts), verified against its
   * ID, and writes it back locally. Bytes that do not verify are never returned nor stored.
   */
  private async repairObject(kind: ObjectKind, id: string, signal: AbortSignal, onFetch?: FetchProgress): Promise<Buffer> {
    const holders = holderOrder(this.c.peers.connected(), id, this.o.serverId);
    if (holders.length === 0) throw new UnavailableError(`object ${id} is unusable locally and no peer is connected`);
    let r;
    try {
      r = await hedgedFetch({
        holders,
        fetch: (peer, s) => this.c.peers.fetch(peer, this.o.serverId, kind, id, s),
        verify: (data) => objectIdOf(data) === id,
        hedgeMs: this.o.hedgeMs ?? 300,
        signal,
        log: this.log,
        what: `${kind} ${id}`,
      });
    } catch (err) {
      if (err instanceof NotFoundError) throw new DataLossError(`object ${id} is unusable locally and no peer (of ${holders.length}) has a good copy`, { cause: err });
      throw err;
    }
    await this.c.storage.put(this.o.serverId, kind, id, r.data, signal).catch((e) => this.log.warn({ chunk: id, err: (e as Error).message }, 'repair write failed'));
    onFetch?.(kind, r.data.length);
    this.log.info({ peer: r.holder, chunk: id, kind, asked: r.asked }, 'repaired from peer');
    return r.data;
  }

  /**
   * Checks that every chunk of every live version is present locally, fetching (hedged, verified) any
   * that is not. `onProgress` is called after each batch.
   */
  async checkLiveChunks(signal: AbortSignal, onProgress?: (c: ChunkCheck) => void, onFetch?: FetchProgress): Promise<ChunkCheck> {
    const c: ChunkCheck = { checked: 0, missing: 0, fetched: 0, bytes: 0 };
    const seen = new Set<string>();
    const batch: string[] = [];
    const flush = async () => {
      const ids = batch.splice(0);
      if (!ids.length) return;
      const present = await this.c.storage.has(this.o.serverId, 'chunk', ids, signal);
      const absent = ids.filter((_, i) => !present[i]);
      const window = new Window(this.o.window);
      for (const id of absent) {
        await window.add(async () => {
          try {
            const data = await this.repairObject('chunk', id, signal, onFetch);
            c.fetched++;
            c.bytes += data.length;
          } catch (err) {
            if (signal.aborted) throw err;
            c.missing++;
            this.log.warn({ chunk: id, err: (err as Error).message }, 'chunk of a live file is missing and no peer has it');
          }
        });
      }
      await window.drain();
      c.checked += ids.length;
      onProgress?.({ ...c });
    };
    for (const v of this.index.live()) {
      for (const ref of v.manifest.chunks) {
        if (seen.has(ref.id)) continue;
        seen.add(ref.id);
        batch.push(ref.id);
        if (batch.length >= 256) await flush();
      }
    }
    await flush();
    return c;
  }

  /**
   * Pulls whatever the owner's folder lacks from one peer, indexing manifests as they arrive. Sends a
   * summary of the folder, so the peer lists only the buckets that differ; also counts what the peer
   * lacks of this folder (`peerLacks`; re-replication is placement's business).
   */
  async syncFrom(peerId: string, signal: AbortSignal, onFetch?: FetchProgress): Promise<SyncFromResult> {
    let manifests = 0;
    const folder = this.o.serverId;
    const list = (kind: ObjectKind) => this.c.storage.list(folder, kind, signal);
    let objects = 0;
    await this.c.gc?.garbage.load(folder, signal);
    for (const kind of OBJECT_KINDS) for await (const ids of list(kind)) objects += ids.length;
    const summary = await summarize(summaryBits(objects), list);
    const diff = new SyncDiff(summary);
    const result = await this.c.peers.syncFolder(
      peerId,
      folder,
      {
        coverage: (bits, buckets) => void diff.cover(bits, buckets),
        missing: async (kind, ids, s) => {
          try {
            diff.offered(kind, ids);
          } catch (err) {
            throw new InvalidArgumentError(`SyncFolder from ${peerId}: ${(err as Error).message}`);
          }
          // Garbage a GC record names is never fetched (records are listed first, so they are known).
          const wanted = this.c.gc ? this.c.gc.garbage.live(folder, ids) : ids;
          const present = await this.c.storage.has(folder, kind, wanted, s);
          return wanted.filter((_, i) => !present[i]);
        },
        accept: async (obj, s) => {
          if (this.c.gc?.garbage.isDead(folder, obj.id)) return;
          if (obj.kind === 'gc') {
            if (!this.c.gc) return;
            try {
              // Applied before it is stored (as StoreChunk does): deletes what it names here first.
              await this.c.gc.garbage.apply(folder, obj, s);
            } catch (err) {
              if (s?.aborted || !(err instanceof InvalidArgumentError || err instanceof PermissionDeniedError)) throw err;
              this.log.warn({ peer: peerId, record: obj.id, err: (err as Error).message }, 'GC record refused');
              return;
            }
          }
          await this.c.storage.put(folder, obj.kind, obj.id, obj.data, s);
          onFetch?.(obj.kind, obj.data.length);
          if (obj.kind === 'manifest') {
            manifests++;
            await this.indexManifest(obj.id, obj.data, s);
          }
        },
      },
      signal,
      { summary },
    );
    let peerLacks = 0;
    if (summary.buckets.length && diff.coveredBuckets) {
      for (const kind of OBJECT_KINDS) for await (const ids of list(kind)) peerLacks += diff.lacking(kind, ids).length;
    }
    return { ...result, manifests, peerLacks };
  }

  /** Restores the owner's folder from every connected peer (a recovery run; see recovery.ts), and waits for it. */
  async recover(signal: AbortSignal): Promise<RecoverySummary> {
    const run = this.recovery.start('request');
    const st = await waitOrAbort(run.done, signal);
    if (st.phase === 'failed' && st.peersOk === 0) throw new UnavailableError(st.errorMessages.at(-1) ?? 'no peer answered the recovery');
    return summaryOf(st);
  }

  /** Connected peers, for recovery. */
  connectedPeers(): string[] {
    return this.c.peers.connected();
  }
}

