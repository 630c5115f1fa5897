/**
 * The storage domain: a content-addressed, self-verifying object store with one folder per server ID.
 * Framework-free (no gRPC, no Nest). Every implementation validates its input with the helpers below, so
 * all stores reject the same requests with the same domain errors before touching anything.
 */
import { createHash, webcrypto } from 'node:crypto';
import { CancelledError, DataLossError, InvalidArgumentError } from '@distri-vault/shared/errors';
import { assertObjectId, assertServerId } from '@distri-vault/shared/ids';
import { MAX_CHUNK_OBJECT_BYTES, MAX_OBJECT_BYTES } from '@distri-vault/shared/grpc/options';

/**
 * What a stored object is: a piece of file ciphertext, the encrypted record of one version, or a GC record
 * (the folder owner's signed list of garbage; the peer-node checks and applies it, to the store it is bytes).
 */
export type ObjectKind = 'chunk' | 'manifest' | 'gc';

/** Every kind, in the order stats and scans visit them. */
export const OBJECT_KINDS: readonly ObjectKind[] = ['chunk', 'manifest', 'gc'];

/** Largest object of each kind a store accepts, in bytes. */
export const MAX_BYTES_BY_KIND: Readonly<Record<ObjectKind, number>> = {
  chunk: MAX_CHUNK_OBJECT_BYTES,
  manifest: MAX_OBJECT_BYTES,
  gc: MAX_OBJECT_BYTES,
};

/** Most IDs one `has` call may ask about. */
export const MAX_HAS_IDS = 10_000;

/** Most IDs in one batch yielded by `list` (also its default batch size). */
export const MAX_LIST_BATCH = 1_000;

/** Options every store operation takes. */
export interface StoreCallOptions {
  /** Aborts the operation; it then rejects with CancelledError and leaves nothing half-written. */
  signal?: AbortSignal;
}

/** Options of `list`. */
export interface ListOptions extends StoreCallOptions {
  /** Resume strictly after this ID (it need not exist); empty or absent starts at the beginning. */
  startAfter?: string;
  /** Most IDs per yielded batch, 1..MAX_LIST_BATCH; defaults to MAX_LIST_BATCH. */
  batchSize?: number;
}

/** Result of `put`. */
export interface PutResult {
  /** False when the object was already present, in which case nothing was written. */
  created: boolean;
}

/** Counts and byte totals of one folder's objects. An absent folder has all zeros. */
export interface FolderStat {
  /** Number of chunks. */
  chunks: number;
  /** Total bytes of those chunks. */
  chunkBytes: number;
  /** Number of manifests. */
  manifests: number;
  /** Total bytes of those manifests. */
  manifestBytes: number;
  /** Number of GC records. */
  gcRecords: number;
  /** Total bytes of those records. */
  gcRecordBytes: number;
}

/**
 * A node's object store. `folder` is a server ID (SERVER_ID_PATTERN), `id` the lowercase hex SHA-256 of
 * the object's bytes (OBJECT_ID_PATTERN). Any malformed argument rejects with InvalidArgumentError and
 * changes nothing.
 */
export interface ObjectStore {
  /**
   * Stores one object once its SHA-256 equals `id` (else DataLossError, nothing written). Durable before
   * it resolves with `{ created: true }`; an object already present resolves `{ created: false }` and is
   * not rewritten. Concurrent puts of one ID are safe: exactly one of them reports `created`.
   */
  put(folder: string, kind: ObjectKind, id: string, data: Uint8Array, options?: StoreCallOptions): Promise<PutResult>;
  /** Reads one object, verified against its ID. NotFoundError if absent; DataLossError if corrupt. */
  get(folder: string, kind: ObjectKind, id: string, options?: StoreCallOptions): Promise<Buffer>;
  /** One presence flag per ID, in order (at most MAX_HAS_IDS IDs). Presence is not verification. */
  has(folder: string, kind: ObjectKind, ids: readonly string[], options?: StoreCallOptions): Promise<boolean[]>;
  /**
   * The IDs of one kind in a folder, ascending, in non-empty batches of at most `batchSize`, strictly
   * after `startAfter`. An absent folder yields nothing. Validation errors are thrown on the first `next()`.
   */
  list(folder: string, kind: ObjectKind, options?: ListOptions): AsyncIterable<string[]>;
  /** Removes one object; resolves false when it was not present. */
  delete(folder: string, kind: ObjectKind, id: string, options?: StoreCallOptions): Promise<boolean>;
  /** Counts and byte totals of a folder (zeros for an absent folder). */
  stat(folder: string, options?: StoreCallOptions): Promise<FolderStat>;
  /** The folders present, sorted; only names matching SERVER_ID_PATTERN. */
  folders(options?: StoreCallOptions): Promise<string[]>;
  /** Releases resources; the store is not used afterwards. */
  close(): Promise<void>;
}

/** Lowercase hex SHA-256 of `data`. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Objects at least this large are hashed on libuv's thread pool (`sha256HexAsync`); smaller ones inline. */
export const ASYNC_HASH_MIN_BYTES = 64 * 1024;

/**
 * Lowercase hex SHA-256 of `data`, computed off the event loop for large inputs: WebCrypto's digest runs on
 * libuv's thread pool (on a copy of the bytes), so other calls' I/O and gRPC work go on meanwhile. Below
 * ASYNC_HASH_MIN_BYTES the hop to the pool costs more than the hash and it runs inline.
 */
export async function sha256HexAsync(data: Uint8Array): Promise<string> {
  if (data.byteLength < ASYNC_HASH_MIN_BYTES) return sha256Hex(data);
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
}

/** Throws InvalidArgumentError unless `kind` is 'chunk', 'manifest' or 'gc'. */
export function assertKind(kind: unknown): ObjectKind {
  if (kind === 'chunk' || kind === 'manifest' || kind === 'gc') return kind;
  throw new InvalidArgumentError(`invalid object kind ${JSON.stringify(String(kind).slice(0, 40))}: want chunk, manifest or gc`);
}

/** Validates a folder, kind and ID (in that order). */
export function assertKey(folder: string, kind: unknown, id: string): ObjectKind {
  assertServerId(folder);
  const k = assertKind(kind);
  assertObjectId(id);
  return k;
}

/** Validates everything about a put except its hash: key, type and size of `data`. */
export function assertPut(folder: string, kind: unknown, id: string, data: unknown): ObjectKind {
  const k = assertKey(folder, kind, id);
  if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('object data must be bytes');
  if (data.byteLength > MAX_BYTES_BY_KIND[k]) {
    throw new InvalidArgumentError(`${k} of ${data.byteLength} bytes is larger than the limit of ${MAX_BYTES_BY_KIND[k]} bytes`);
  }
  return k;
}

/** Throws DataLossError unless SHA-256(`data`) is `id`. */
export function assertDigest(id: string, data: Uint8Array): void {
  const actual = sha256Hex(data);
  if (actual !== id) throw new DataLossError(`object ${id} does not match its bytes (SHA-256 ${actual})`);
}

/** `assertDigest` with the hash off the event loop (see sha256HexAsync). */
export async function assertDigestAsync(id: string, data: Uint8Array): Promise<void> {
  const actual = await sha256HexAsync(data);
  if (actual !== id) throw new DataLossError(`object ${id} does not match its bytes (SHA-256 ${actual})`);
}

/** Validates the IDs of a `has` call. */
export function assertHas(folder: string, kind: unknown, ids: readonly string[]): ObjectKind {
  assertServerId(folder);
  const k = assertKind(kind);
  if (!Array.isArray(ids)) throw new InvalidArgumentError('ids must be a list');
  if (ids.length > MAX_HAS_IDS) throw new InvalidArgumentError(`too many IDs: ${ids.length} (at most ${MAX_HAS_IDS})`);
  for (const id of ids) assertObjectId(id);
  return k;
}

/** Validates a `list` call and returns its resolved options. */
export function assertList(folder: string, kind: unknown, options: ListOptions = {}): { kind: ObjectKind; startAfter: string; batchSize: number } {
  assertServerId(folder);
  const k = assertKind(kind);
  const startAfter = options.startAfter ?? '';
  if (startAfter !== '') assertObjectId(startAfter);
  const batchSize = options.batchSize ?? MAX_LIST_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_LIST_BATCH) {
    throw new InvalidArgumentError(`batch size must be 1..${MAX_LIST_BATCH}`);
  }
  return { kind: k, startAfter, batchSize };
}

/** Throws CancelledError when `signal` has fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError('operation cancelled');
}
