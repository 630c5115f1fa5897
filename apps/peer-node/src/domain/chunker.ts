/**
 * Cuts a byte stream into fixed-size chunks, marking the final one. Holds at most one chunk plus the
 * frame being cut: memory does not grow with the stream.
 */

/** One chunk of plaintext with its position. */
export interface Chunk {
  index: number;
  data: Buffer;
  last: boolean;
}

/**
 * The bytes of one chunk. A chunk that lies within a single frame (the gateway sends 1 MiB frames, so with
 * the default chunk size every chunk does) is a view of that frame: no copy on the hot path.
 */
function join(parts: Buffer[], filled: number): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, filled);
}

/** Yields chunks of exactly `size` bytes (the last may be shorter; an empty stream yields none). */
export async function* chunkStream(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Chunk> {
  let parts: Buffer[] = [];
  let filled = 0;
  let pending: Buffer | undefined;
  let index = 0;
  for await (const frame of source) {
    let offset = 0;
    while (offset < frame.length) {
      const take = Math.min(size - filled, frame.length - offset);
      parts.push(frame.subarray(offset, offset + take));
      filled += take;
      offset += take;
      if (filled === size) {
        if (pending) yield { index: index++, data: pending, last: false };
        pending = join(parts, filled);
        parts = [];
        filled = 0;
      }
    }
  }
  if (filled > 0) {
    if (pending) yield { index: index++, data: pending, last: false };
    pending = join(parts, filled);
  }
  if (pending) yield { index, data: pending, last: true };
}
