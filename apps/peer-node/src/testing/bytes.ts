/** Test data for the peer-node's specs. */

/** `n` deterministic pseudo-random bytes (xorshift32 from `seed`). */
export function seeded(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** `b` as a one-piece stream, the shape Vault.upload reads. */
export async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/** Everything a stream of Buffers yields, concatenated (tests only: files here are small). */
export async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}
