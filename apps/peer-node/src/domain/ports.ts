/**
 * What the node's domain code needs from the outside world, as plain interfaces: its crypto-service,
 * its storage-service, and its peers. Adapters in ../adapters implement them over gRPC; tests may
 * implement them in memory.
 */
import type { BucketRef, FolderSummary } from './summary';

/** Object kinds, as the domain names them ('gc': a GC record, domain/garbage.ts). */
export type ObjectKind = 'chunk' | 'manifest' | 'gc';

/**
 * Every kind, in the order listings, inventories and syncs visit them: GC records first, so a node that
 * syncs or recovers learns the tombstones before it is offered the garbage they name.
 */
export const OBJECT_KINDS: readonly ObjectKind[] = ['gc', 'chunk', 'manifest'];

/** Where a chunk belongs; bound into its ciphertext. */
export interface ChunkContext {
  folder: string;
  fileId: Buffer;
  index: number;
  last: boolean;
}

/** The node's crypto-service. */
export interface CryptoPort {
  createDataKey(folder: string, signal?: AbortSignal): Promise<Buffer>;
  sealChunk(wrappedKey: Buffer, ctx: ChunkContext, plaintext: Buffer, signal?: AbortSignal): Promise<{ id: string; ciphertext: Buffer }>;
  openChunk(wrappedKey: Buffer, ctx: ChunkContext, ciphertext: Buffer, signal?: AbortSignal): Promise<Buffer>;
  sealManifest(folder: string, plaintext: Buffer, signal?: AbortSignal): Promise<{ id: string; ciphertext: Buffer }>;
  openManifest(folder: string, ciphertext: Buffer, signal?: AbortSignal): Promise<Buffer>;
  /** Public facts of the vault key (never the key). */
  keyInfo(signal?: AbortSignal): Promise<VaultKeyInfo>;
  /** The same data key wrapped under the current vault key; DataLossError if no key of the ring wrapped it. */
  rewrapDataKey(folder: string, wrappedKey: Buffer, signal?: AbortSignal): Promise<Buffer>;
  /** A fresh current vault key, durable before this resolves; the old one is kept until retired. */
  rotateVaultKey(signal?: AbortSignal): Promise<{ keyFingerprint: string; previousFingerprint: string }>;
  /** Deletes a previous vault key for good; returns the previous keys left. */
  retireVaultKey(fingerprint: string, signal?: AbortSignal): Promise<string[]>;
}

/** Public facts of the node's vault key. */
export interface VaultKeyInfo {
  /** 16 hex characters telling keys apart. */
  keyFingerprint: string;
  /** When the current key was created, Unix ms. */
  createdUnixMs: number;
  /** Rotated-out keys still kept. */
  previousFingerprints: string[];
}

/** The node's storage-service. */
export interface StoragePort {
  put(folder: string, kind: ObjectKind, id: string, data: Buffer, signal?: AbortSignal): Promise<boolean>;
  /** Throws NotFoundError or DataLossError. */
  get(folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<Buffer>;
  has(folder: string, kind: ObjectKind, ids: string[], signal?: AbortSignal): Promise<boolean[]>;
  list(folder: string, kind: ObjectKind, signal?: AbortSignal): AsyncIterable<string[]>;
  delete(folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<boolean>;
  /** Every folder (server ID) this node's disk holds objects of, its own and its peers'. */
  listFolders(signal?: AbortSignal): Promise<string[]>;
}

/** One object with its bytes. */
export interface StoredObject {
  kind: ObjectKind;
  id: string;
  data: Buffer;
}

/** A replication stream into one peer: objects are acknowledged once durable there. */
export interface ReplicaSession {
  /** The peer's server ID. */
  readonly peerId: string;
  /** Resolves when the peer acknowledged the object; waits while the peer's window is full. */
  send(obj: StoredObject, signal?: AbortSignal): Promise<void>;
  /** Finishes the stream cleanly. */
  close(): Promise<void>;
  /** Tears the stream down. */
  abort(): void;
}

/** What the node knows of its peers and how it reaches them. */
export interface PeersPort {
  /** Connected peers' server IDs, in a deterministic order. */
  connected(): string[];
  /** Opens a replication stream into `peerId` for `folder`. */
  openReplica(peerId: string, folder: string, signal?: AbortSignal): Promise<ReplicaSession>;
  /** Fetches one object from a peer; resolves null if it does not have it. The bytes are verified by the caller. */
  fetch(peerId: string, folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<Buffer | null>;
}

/** Decisions the requester of a folder sync makes; the transport asks, the domain answers. */
export interface SyncSink {
  /** Of these IDs offered by the peer, the ones to fetch. */
  missing(kind: ObjectKind, ids: string[], signal?: AbortSignal): Promise<string[]>;
  /** Stores one fetched object (already verified against its ID by the transport). */
  accept(obj: StoredObject, signal?: AbortSignal): Promise<void>;
  /**
   * When the sync was opened with a summary: the buckets the responder covers, before any inventory.
   * Throws RangeError if they do not fit the summary (the transport then fails the sync).
   */
  coverage?(bits: number, buckets: BucketRef[]): void;
}

/** Options of one folder sync. */
export interface SyncOptions {
  /**
   * The requester's summary of the folder: the responder lists only buckets that differ. Without it,
   * the responder lists its whole inventory.
   */
  summary?: FolderSummary;
}

/** What one folder sync with one peer moved. */
export interface SyncResult {
  offered: number;
  fetched: number;
  bytes: number;
  missing: number;
  /** Buckets the responder covered; undefined for a full inventory (no summary). */
  coveredBuckets?: number;
}

/** Runs SyncFolder for `folder` against one peer. */
export interface FolderSyncer {
  syncFolder(peerId: string, folder: string, sink: SyncSink, signal?: AbortSignal, options?: SyncOptions): Promise<SyncResult>;
}

/** A peer's inventory of one folder: the IDs it holds, by kind. */
export interface FolderInventory {
  chunk: Set<string>;
  manifest: Set<string>;
  gc: Set<string>;
}

/** Reads a peer's whole inventory of one folder (SyncFolder opened without a summary, read to its end). */
export interface InventoryPort {
  inventory(peerId: string, folder: string, signal?: AbortSignal): Promise<FolderInventory>;
}

/**
 * Membership as placement sees it: which members exist and which are gone (not connected for longer
 * than the grace period). Gone members are left out of every ranking's desired holders.
 */
export interface MembershipPort {
  /** Every member known (this node excluded), gone ones included. */
  members(): string[];
  /** True when `serverId` is gone. This node itself never is. */
  isGone(serverId: string): boolean;
}
