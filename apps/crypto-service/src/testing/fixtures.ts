/** Test helpers: deterministic bytes from a seed, temporary directories, and fixed folder IDs. */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Deterministic pseudo-random bytes: SHA-256 in counter mode over `seed`. */
export function seededBytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let block = 0, pos = 0; pos < length; block++) {
    const h = createHash('sha256').update(seed).update(String(block)).digest();
    pos += h.copy(out, pos);
  }
  return out;
}

/** Two well-formed server IDs (32 base32 characters). */
export const FOLDER_A = 'a'.repeat(32);
export const FOLDER_B = 'abcdefghijklmnopqrstuvwxyz234567';

/** A fresh directory under the OS temp dir; remove it with removeTempDir. */
export function makeTempDir(prefix = 'crypto-service-'): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), prefix));
}

/** Removes a directory made by makeTempDir. */
export function removeTempDir(dir: string): Promise<void> {
  return fs.rm(dir, { recursive: true, force: true });
}
