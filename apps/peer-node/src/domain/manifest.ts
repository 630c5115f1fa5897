/**
 * The manifest: the record of one file version. Serialized as JSON, then encrypted by the crypto-service
 * before it touches any disk, so peers see neither its path nor its sizes.
 */
import { z } from 'zod';
import { OBJECT_ID_PATTERN, DataLossError } from '@distri-vault/shared';

const chunkRef = z.object({ id: z.string().regex(OBJECT_ID_PATTERN), size: z.number().int().min(0) });

const schema = z.object({
  format: z.literal(1),
  path: z.string().min(1),
  version: z.number().int().min(1),
  deleted: z.boolean(),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^([0-9a-f]{64})?$/),
  createdUnixMs: z.number().int().min(0),
  fileId: z.string(),
  wrappedKey: z.string(),
  chunks: z.array(chunkRef),
  /** Set on a history record that removes these versions of the path (DeleteVersion); not a version itself. */
  removes: z.array(z.number().int().min(1)).optional(),
  /**
   * Rewrite number of this (path, version): absent (0) for the original, +1 for each replacement written
   * by a vault-key rotation (same content, data key re-wrapped under the new key). The index prefers the
   * highest, so a replacement wins over the original while both still decrypt, whatever the load order.
   */
  generation: z.number().int().min(0).optional(),
});

/** One chunk of a version: its ID (SHA-256 of the ciphertext) and plaintext size. */
export type ChunkRef = z.infer<typeof chunkRef>;

/** One file version, decrypted. `fileId` and `wrappedKey` are base64. */
export type Manifest = z.infer<typeof schema>;

/** Serializes a manifest for encryption. */
export function encodeManifest(m: Manifest): Buffer {
  return Buffer.from(JSON.stringify(m), 'utf8');
}

/** Parses a decrypted manifest; DataLossError if it is not one. */
export function decodeManifest(bytes: Buffer): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new DataLossError('manifest is not valid JSON', { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new DataLossError(`manifest is malformed: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const m = parsed.data;
  const total = m.chunks.reduce((s, c) => s + c.size, 0);
  if (total !== m.size) throw new DataLossError('manifest chunk sizes do not add up to the file size');
  return m;
}
