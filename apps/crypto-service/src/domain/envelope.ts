/**
 * Envelope format v1, shared by wrapped data keys, chunks and manifests:
 *
 *   0x01 | 12-byte random nonce | AES-256-GCM ciphertext | 16-byte tag
 *
 * The associated data is never stored: it is recomputed from the request, so an envelope opens only in
 * the context it was sealed for (folder, file version, index, last-ness).
 *
 * Nonces. A reader takes the nonce from the envelope, so how it is chosen is the writer's business:
 * - chunks: uint32 BE chunk index | 8 random bytes (chunkNonce). Every data key belongs to one file
 *   version, so two chunks of a version (different indices) can never share a nonce; only re-sealing the
 *   same index under the same data key (a retried upload) draws a second random 64-bit tail (collision
 *   chance 2^-64 per retry pair).
 * - wrapped data keys and manifests: 12 random bytes under the long-lived HKDF sub-keys, one seal per file
 *   version each; NIST SP 800-38D's 2^32 random-nonce limit per key is billions of versions away.
 * The format is frozen: golden vectors in envelope.vectors.spec.ts.
 */
import { createCipheriv, createDecipheriv, createHash, randomFillSync, type KeyObject } from 'node:crypto';
import { DataLossError, InvalidArgumentError } from '@distri-vault/shared';

/** The version byte of chunks and wrapped data keys (and of manifests written before padding). */
export const ENVELOPE_VERSION = 1;
/**
 * The version byte of padded manifests: the v1 layout around `uint32 BE length | manifest | zeros`, padded
 * to a power of two (at least 1 KiB) so a manifest's size tells a peer neither its path's length nor,
 * beyond a factor of two, its chunk count; associated data "distri-vault/manifest/v2\0" + folder.
 */
export const PADDED_MANIFEST_VERSION = 2;
/** Smallest padded manifest plaintext. */
export const MIN_PADDED_MANIFEST_BYTES = 1024;
/** Bytes of the random AES-GCM nonce. */
export const NONCE_BYTES = 12;
/** Bytes of the AES-GCM authentication tag. */
export const TAG_BYTES = 16;
/** Bytes an envelope adds to its plaintext: version byte, nonce and tag (29). */
export const ENVELOPE_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;
/** Bytes of a data key. */
export const DATA_KEY_BYTES = 32;
/** Bytes of a wrapped data key: an envelope around a 32-byte key (61). */
export const WRAPPED_KEY_BYTES = DATA_KEY_BYTES + ENVELOPE_OVERHEAD;
/** Bytes of a file version's identifier. */
export const FILE_ID_BYTES = 16;

const WRAP_AD_PREFIX = Buffer.from('distri-vault/wrap/v1\0', 'utf8');
const CHUNK_AD_PREFIX = Buffer.from('distri-vault/chunk/v1\0', 'utf8');
const MANIFEST_AD_PREFIX = Buffer.from('distri-vault/manifest/v1\0', 'utf8');
const MANIFEST_V2_AD_PREFIX = Buffer.from('distri-vault/manifest/v2\0', 'utf8');

/** Where a chunk belongs; bound into its envelope as associated data. */
export interface ChunkContext {
  /** Server ID of the folder (its owner). */
  folder: string;
  /** The file version's 16-byte identifier. */
  fileId: Uint8Array;
  /** Position of the chunk in the file, from 0 (uint32). */
  index: number;
  /** True for the file's final chunk. */
  last: boolean;
}

/** Associated data of a wrapped data key: "distri-vault/wrap/v1\0" + folder. */
export function wrapAssociatedData(folder: string): Buffer {
  return Buffer.concat([WRAP_AD_PREFIX, Buffer.from(folder, 'utf8')]);
}

/** Associated data of a manifest: "distri-vault/manifest/v1\0" + folder. */
export function manifestAssociatedData(folder: string): Buffer {
  return Buffer.concat([MANIFEST_AD_PREFIX, Buffer.from(folder, 'utf8')]);
}

/** Associated data of a padded (version 2) manifest: "distri-vault/manifest/v2\0" + folder. */
export function paddedManifestAssociatedData(folder: string): Buffer {
  return Buffer.concat([MANIFEST_V2_AD_PREFIX, Buffer.from(folder, 'utf8')]);
}

/** `uint32 BE length | plaintext | zeros`, `maxBytes` at most, else the next power of two of at least 1 KiB. */
export function padManifest(plaintext: Uint8Array, maxBytes: number): Buffer {
  const need = 4 + plaintext.length;
  if (need > maxBytes) throw new RangeError(`manifest of ${plaintext.length} bytes does not fit in ${maxBytes} padded bytes`);
  let size = MIN_PADDED_MANIFEST_BYTES;
  while (size < need) size *= 2;
  const out = Buffer.alloc(Math.min(size, maxBytes));
  out.writeUInt32BE(plaintext.length, 0);
  out.set(plaintext, 4);
  return out;
}

/** Inverse of padManifest; DataLossError when the length or padding is wrong (never for authentic bytes). */
export function unpadManifest(padded: Buffer): Buffer {
  const len = padded.length >= 4 ? padded.readUInt32BE(0) : -1;
  if (len < 0 || len > padded.length - 4 || padded.subarray(4 + len).some((b) => b !== 0)) {
    throw new DataLossError('manifest: malformed padding');
  }
  return padded.subarray(4, 4 + len);
}

/**
 * Associated data of a chunk:
 * "distri-vault/chunk/v1\0" + folder + "\0" + file_id (16 bytes) + uint32 BE index + (last ? 1 : 0).
 */
export function chunkAssociatedData(ctx: ChunkContext): Buffer {
  const tail = Buffer.alloc(4 + 1);
  tail.writeUInt32BE(ctx.index, 0);
  tail[4] = ctx.last ? 1 : 0;
  return Buffer.concat([CHUNK_AD_PREFIX, Buffer.from(ctx.folder, 'utf8'), Buffer.from([0]), ctx.fileId, tail]);
}

/** A chunk's nonce: uint32 BE index, then 8 random bytes (distinct indices never collide). */
export function chunkNonce(index: number): Buffer {
  const nonce = Buffer.allocUnsafe(NONCE_BYTES);
  nonce.writeUInt32BE(index, 0);
  randomFillSync(nonce, 4, NONCE_BYTES - 4);
  return nonce;
}

/**
 * Seals `plaintext` under `key` (AES-256-GCM) bound to `ad`, with `nonce` (12 bytes) or a fresh random
 * one. A nonce must never be passed twice for one key: fixed nonces are for chunkNonce and test vectors.
 */
export function sealEnvelope(key: KeyObject, ad: Uint8Array, plaintext: Uint8Array, nonce?: Uint8Array, version = ENVELOPE_VERSION): Buffer {
  const out = Buffer.allocUnsafe(plaintext.length + ENVELOPE_OVERHEAD);
  out[0] = version;
  if (nonce) {
    if (nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
    out.set(nonce, 1);
  } else {
    randomFillSync(out, 1, NONCE_BYTES);
  }
  const cipher = createCipheriv('aes-256-gcm', key, out.subarray(1, 1 + NONCE_BYTES), { authTagLength: TAG_BYTES });
  cipher.setAAD(ad);
  let pos = 1 + NONCE_BYTES;
  pos += cipher.update(plaintext).copy(out, pos);
  pos += cipher.final().copy(out, pos);
  cipher.getAuthTag().copy(out, pos);
  return out;
}

/**
 * Checks an envelope's shape without a key: InvalidArgumentError when it is shorter than the overhead or
 * longer than `maxBytes`; DataLossError when its version byte is unknown (a flipped header bit reads as
 * corruption, like any other tampering).
 */
export function assertEnvelopeShape(envelope: Uint8Array, what: string, maxBytes: number, version = ENVELOPE_VERSION): void {
  if (envelope.length < ENVELOPE_OVERHEAD) {
    throw new InvalidArgumentError(`${what}: envelope of ${envelope.length} bytes is shorter than the ${ENVELOPE_OVERHEAD}-byte minimum`);
  }
  if (envelope.length > maxBytes) throw new InvalidArgumentError(`${what}: envelope of ${envelope.length} bytes exceeds ${maxBytes}`);
  if (envelope[0] !== version) throw new DataLossError(`${what}: unknown envelope version ${envelope[0]}`);
}

/**
 * Opens an envelope sealed by `sealEnvelope` with the same key and associated data.
 * InvalidArgumentError for a malformed envelope; DataLossError when authentication fails, in which
 * case no plaintext is returned.
 */
export function openEnvelope(key: KeyObject, ad: Uint8Array, envelope: Uint8Array, what = 'envelope', maxBytes = Number.MAX_SAFE_INTEGER, version = ENVELOPE_VERSION): Buffer {
  assertEnvelopeShape(envelope, what, maxBytes, version);
  const tagAt = envelope.length - TAG_BYTES;
  const decipher = createDecipheriv('aes-256-gcm', key, envelope.subarray(1, 1 + NONCE_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(ad);
  decipher.setAuthTag(envelope.subarray(tagAt));
  const body = decipher.update(envelope.subarray(1 + NONCE_BYTES, tagAt));
  try {
    decipher.final();
  } catch {
    // GCM releases plaintext before the tag is checked: wipe it so unauthenticated bytes never linger.
    body.fill(0);
    throw new DataLossError(`${what}: authentication failed (tampered, wrong key or wrong context)`);
  }
  return body;
}

/** Lowercase hex SHA-256 of `bytes`: the ID of a chunk or manifest envelope. */
export function objectId(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
