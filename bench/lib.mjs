// Helpers shared by the benches (plain JS: the benches run without a build step).
import { Readable } from 'node:stream';

const MiB = 1024 * 1024;

/** `bytes` pseudo-random (incompressible) bytes from `seed` (xorshift32), generated as the stream is read. */
export function body(bytes, seed) {
  let left = bytes;
  let x = seed >>> 0 || 1;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, MiB);
      const out = Buffer.allocUnsafe(n);
      for (let i = 0; i + 4 <= n; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out.writeUInt32LE(x >>> 0, i);
      }
      left -= n;
      this.push(out);
    },
  });
}
