/**
 * The crypto-service's domain: envelope encryption of chunks and manifests under one node's vault key.
 * Framework-free; the gRPC adapter maps requests onto these methods.
 */
import { createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import {
  assertServerId,
  CancelledError,
  DataLossError,
  InvalidArgumentError,
  MAX_CHUNK_PLAINTEXT_BYTES,
  MAX_OBJECT_BYTES,
} from '@distri-vault/shared';
import {
  assertEnvelopeShape,
  chunkAssociatedData,
  chunkNonce,
  DATA_KEY_BYTES,
  ENVELOPE_OVERHEAD,
  ENVELOPE_VERSION,
  FILE_ID_BYTES,
  manifestAssociatedData,
  objectId,
  padManifest,
  PADDED_MANIFEST_VERSION,
  paddedManifestAssociatedData,
  unpadManifest,
  openEnvelope,
  sealEnvelope,
  WRAPPED_KEY_BYTES,
  wrapAssociatedData,
  type ChunkContext,
} from './envelope';
import type { VaultKey } from './vault-key';

/** Largest padded manifest: its envelope must fit in one object (MAX_OBJECT_BYTES - 29). */
export const MAX_PADDED_MANIFEST_BYTES = MAX_OBJECT_BYTES - ENVELOPE_OVERHEAD;
/** Largest manifest plaintext: the padded form adds a 4-byte length. */
export const MAX_MANIFEST_PLAINTEXT_BYTES = MAX_PADDED_MANIFEST_BYTES - 4;
/**
 * Largest chunk plaintext the service seals: 4 MiB. The node's chunks are at most MAX_CHUNK_PLAINTEXT_BYTES
 * (1 MiB); the service accepts up to four times that so a larger chunk size can be measured
 * (bench/crypto.mjs) and adopted without a service change. Well under the 8 MiB gRPC message limit.
 */
export const MAX_SEAL_CHUNK_BYTES = 4 * MAX_CHUNK_PLAINTEXT_BYTES;
/** Largest chunk envelope accepted by openChunk. */
export const MAX_CHUNK_ENVELOPE_BYTES = MAX_SEAL_CHUNK_BYTES + ENVELOPE_OVERHEAD;

/** What the engine is built from. */
export interface CryptoEngineComponents {
  /** The node's vault key (derived sub-keys only): seals everything new. */
  vaultKey: VaultKey;
  /** Rotated-out vault keys, tried in order after the current one to open data keys and manifests. */
  previousKeys?: VaultKey[];
}

/** Tuning of the engine. */
export interface CryptoEngineOptions {
  /** How many unwrapped data keys to keep in memory, least recently used evicted first. Default 256; 0 disables. */
  dataKeyCacheSize?: number;
}

/** A sealed chunk or manifest. */
export interface Sealed {
  /** The envelope: 0x01 | nonce | ciphertext | tag. */
  ciphertext: Buffer;
  /** Lowercase hex SHA-256 of the envelope: its object ID. */
  id: string;
}

/** Public facts about the vault key. */
export interface KeyInfo {
  /** First 16 hex characters of SHA-256("distri-vault/fingerprint/v1\0" + vault key). */
  keyFingerprint: string;
  /** Envelope format version written: 1. */
  formatVersion: number;
  /** When the vault key was created, Unix milliseconds. */
  createdUnixMs: number;
  /** Fingerprints of the previous vault keys still kept. */
  previousFingerprints: string[];
}

/**
 * Creates, wraps and unwraps data keys; seals and opens chunks (under a data key) and manifests (under
 * the vault key's manifest sub-key). Every method validates its input (InvalidArgumentError) and reports
 * failed authentication as DataLossError without returning any plaintext.
 */
export class CryptoEngine {
  private vaultKey: VaultKey;
  private previousKeys: VaultKey[];
  private readonly cacheSize: number;
  // Map iteration order is insertion order: re-inserting on hit makes the first key the least recently used.
  private readonly dataKeys = new Map<string, KeyObject>();

  constructor(components: CryptoEngineComponents, options: CryptoEngineOptions = {}) {
    this.vaultKey = components.vaultKey;
    this.previousKeys = components.previousKeys ?? [];
    this.cacheSize = options.dataKeyCacheSize ?? 256;
    if (!Number.isInteger(this.cacheSize) || this.cacheSize < 0) throw new RangeError('dataKeyCacheSize must be a non-negative integer');
  }

  /** Number of unwrapped data keys currently cached (never above dataKeyCacheSize). */
  get cachedDataKeys(): number {
    return this.dataKeys.size;
  }

  /** A fresh random 32-byte data key for `folder`, wrapped by the vault key (61 bytes). */
  async createDataKey(folder: string, signal?: AbortSignal): Promise<Buffer> {
    checkSignal(signal);
    assertServerId(folder);
    const raw = randomBytes(DATA_KEY_BYTES);
    try {
      return sealEnvelope(this.vaultKey.wrapKey, wrapAssociatedData(folder), raw);
    } finally {
      raw.fill(0);
    }
  }

  /** Encrypts one chunk (at most MAX_SEAL_CHUNK_BYTES) under the data key, bound to `context`. */
  async sealChunk(wrappedKey: Uint8Array, context: ChunkContext, plaintext: Uint8Array, signal?: AbortSignal): Promise<Sealed> {
    checkSignal(signal);
    assertChunkContext(context);
    assertWrappedKey(wrappedKey);
    if (plaintext.length > MAX_SEAL_CHUNK_BYTES) {
      throw new InvalidArgumentError(`chunk plaintext of ${plaintext.length} bytes exceeds ${MAX_SEAL_CHUNK_BYTES}`);
    }
    const key = this.unwrap(wrappedKey, context.folder);
    const ciphertext = sealEnvelope(key, chunkAssociatedData(context), plaintext, chunkNonce(context.index));
    return { ciphertext, id: objectId(ciphertext) };
  }

  /** Decrypts one chunk sealed by sealChunk with the same data key and context. */
  async openChunk(wrappedKey: Uint8Array, context: ChunkContext, ciphertext: Uint8Array, signal?: AbortSignal): Promise<Buffer> {
    checkSignal(signal);
    assertChunkContext(context);
    assertWrappedKey(wrappedKey);
    assertEnvelopeShape(ciphertext, 'chunk', MAX_CHUNK_ENVELOPE_BYTES);
    const key = this.unwrap(wrappedKey, context.folder);
    return openEnvelope(key, chunkAssociatedData(context), ciphertext, 'chunk');
  }

  /** Encrypts a manifest (at most MAX_MANIFEST_PLAINTEXT_BYTES) for `folder` under the manifest key. */
  async sealManifest(folder: string, plaintext: Uint8Array, signal?: AbortSignal): Promise<Sealed> {
    checkSignal(signal);
    assertServerId(folder);
    if (plaintext.length > MAX_MANIFEST_PLAINTEXT_BYTES) {
      throw new InvalidArgumentError(`manifest plaintext of ${plaintext.length} bytes exceeds ${MAX_MANIFEST_PLAINTEXT_BYTES}`);
    }
    const padded = padManifest(plaintext, MAX_PADDED_MANIFEST_BYTES);
    const ciphertext = sealEnvelope(this.vaultKey.manifestKey, paddedManifestAssociatedData(folder), padded, undefined, PADDED_MANIFEST_VERSION);
    return { ciphertext, id: objectId(ciphertext) };
  }

  /** Decrypts a manifest sealed by sealManifest for the same folder with the same vault key. */
  async openManifest(folder: string, ciphertext: Uint8Array, signal?: AbortSignal): Promise<Buffer> {
    checkSignal(signal);
    assertServerId(folder);
    if (ciphertext.length > 0 && ciphertext[0] === PADDED_MANIFEST_VERSION) {
      const ad = paddedManifestAssociatedData(folder);
      const padded = this.withEachKey((k) => openEnvelope(k.manifestKey, ad, ciphertext, 'manifest', MAX_OBJECT_BYTES, PADDED_MANIFEST_VERSION));
      return unpadManifest(padded);
    }
    // Version 1: manifests written before padding.
    const ad = manifestAssociatedData(folder);
    return this.withEachKey((k) => openEnvelope(k.manifestKey, ad, ciphertext, 'manifest', MAX_OBJECT_BYTES));
  }

  /**
   * Re-wraps a data key (wrapped by the current or a previous vault key) under the current one. The data
   * key itself does not change, so the chunks it sealed stay as they are: this is key rotation without
   * re-encryption. DataLossError when no key of the keyring wrapped it.
   */
  async rewrapDataKey(folder: string, wrappedKey: Uint8Array, signal?: AbortSignal): Promise<Buffer> {
    checkSignal(signal);
    assertServerId(folder);
    assertWrappedKey(wrappedKey);
    const raw = this.unwrapRaw(wrappedKey, folder);
    try {
      return sealEnvelope(this.vaultKey.wrapKey, wrapAssociatedData(folder), raw);
    } finally {
      raw.fill(0);
    }
  }

  /** Replaces the keyring (after a rotation or retirement) and forgets every cached data key. */
  setKeys(components: CryptoEngineComponents): void {
    this.vaultKey = components.vaultKey;
    this.previousKeys = components.previousKeys ?? [];
    this.dataKeys.clear();
  }

  /** Fingerprints of the previous vault keys still kept. */
  get previousFingerprints(): string[] {
    return this.previousKeys.map((k) => k.fingerprint);
  }

  /** Public facts about the vault key. */
  async keyInfo(signal?: AbortSignal): Promise<KeyInfo> {
    checkSignal(signal);
    return {
      keyFingerprint: this.vaultKey.fingerprint,
      formatVersion: ENVELOPE_VERSION,
      createdUnixMs: this.vaultKey.createdUnixMs,
      previousFingerprints: this.previousFingerprints,
    };
  }

  /** The raw data key (caller zero-fills it); DataLossError unless a key of the keyring wrapped it for `folder`. */
  private unwrapRaw(wrappedKey: Uint8Array, folder: string): Buffer {
    const ad = wrapAssociatedData(folder);
    return this.withEachKey((k) => openEnvelope(k.wrapKey, ad, wrappedKey, 'wrapped data key'));
  }

  /**
   * Runs `open` with the current vault key, then each previous one, until one authenticates. A wrong key
   * fails GCM authentication, so trying costs one small decryption per key; wrapped keys and manifests
   * carry no key ID. Rethrows the first DataLossError when none fits, any other error at once.
   */
  private withEachKey<T>(open: (key: VaultKey) => T): T {
    let first: unknown;
    for (const key of [this.vaultKey, ...this.previousKeys]) {
      try {
        return open(key);
      } catch (err) {
        if (!(err instanceof DataLossError)) throw err;
        first ??= err;
      }
    }
    throw first;
  }

  /** Unwraps a data key (DataLossError if it was not wrapped by this vault key for this folder). */
  private unwrap(wrappedKey: Uint8Array, folder: string): KeyObject {
    // The folder is part of the cache key: a hit must imply the same authenticated (key, folder) pair,
    // or a cached key would open for a folder it was never wrapped for.
    const cacheKey = createHash('sha256').update(folder, 'utf8').update(Buffer.from([0])).update(wrappedKey).digest('hex');
    const hit = this.dataKeys.get(cacheKey);
    if (hit) {
      this.dataKeys.delete(cacheKey);
      this.dataKeys.set(cacheKey, hit);
      return hit;
    }
    const raw = this.unwrapRaw(wrappedKey, folder);
    const key = createSecretKey(raw);
    raw.fill(0);
    if (this.cacheSize > 0) {
      this.dataKeys.set(cacheKey, key);
      if (this.dataKeys.size > this.cacheSize) this.dataKeys.delete(this.dataKeys.keys().next().value as string);
    }
    return key;
  }
}

function assertChunkContext(ctx: ChunkContext | undefined): asserts ctx is ChunkContext {
  if (!ctx) throw new InvalidArgumentError('chunk context is required');
  assertServerId(ctx.folder);
  if (ctx.fileId.length !== FILE_ID_BYTES) throw new InvalidArgumentError(`file_id must be ${FILE_ID_BYTES} bytes, got ${ctx.fileId.length}`);
  if (!Number.isInteger(ctx.index) || ctx.index < 0 || ctx.index > 0xffffffff) throw new InvalidArgumentError(`chunk index ${ctx.index} is not a uint32`);
}

function assertWrappedKey(wrappedKey: Uint8Array): void {
  if (wrappedKey.length !== WRAPPED_KEY_BYTES || wrappedKey[0] !== ENVELOPE_VERSION) {
    throw new InvalidArgumentError(`wrapped_key must be ${WRAPPED_KEY_BYTES} bytes starting with 0x0${ENVELOPE_VERSION}`);
  }
}

function checkSignal(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError('crypto operation cancelled');
}
