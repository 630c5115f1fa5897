/**
 * Deterministic test data: a seeded generator (mulberry32), objects with their IDs, and IDs that share a
 * prefix (to fill one shard past a batch).
 */
import { createCipheriv, createHash } from 'node:crypto';

/** A seeded pseudo-random generator of 32-bit values. */
export class Rng {
  private state: number;
  /** Starts the sequence at `seed`. */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** The next 32-bit unsigned value. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** `n` pseudo-random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.next(), i);
    for (; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/** One object with its content address. */
export interface TestObject {
  /** Lowercase hex SHA-256 of data. */
  id: string;
  /** The bytes. */
  data: Buffer;
}

/** Lowercase hex SHA-256. */
export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** An object of `size` seeded bytes. */
export function makeObject(rng: Rng, size: number): TestObject {
  const data = rng.bytes(size);
  return { id: sha256(data), data };
}

/** `count` distinct small objects whose IDs all start with the two hex characters `prefix`. */
export function objectsWithPrefix(rng: Rng, prefix: string, count: number): TestObject[] {
  const out: TestObject[] = [];
  const seen = new Set<string>();
  while (out.length < count) {
    const o = makeObject(rng, 12);
    if (o.id.startsWith(prefix) && !seen.has(o.id)) {
      seen.add(o.id);
      out.push(o);
    }
  }
  return out;
}

/** A valid folder (server ID) derived from `n`: 32 base32 characters. */
export function folderId(n: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const rng = new Rng(0xf01d + n);
  let s = '';
  for (let i = 0; i < 32; i++) s += alphabet[rng.next() & 31];
  return s;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** An object of `size` bytes from AES-128-CTR keyed by `seed`: deterministic and fast for large data. */
export function makeFastObject(seed: string, size: number): TestObject {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const data = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
  return { id: sha256(data), data };
}
