/**
 * Conditional and partial downloads: `Range: bytes=…` (one range; RFC 9110 §14), `If-None-Match` and
 * `If-Range` against the ETag, which is the quoted SHA-256 of the plaintext (a strong validator: one
 * version's bytes never change).
 */
import { DataLossError, InvalidArgumentError } from '@distri-vault/shared';

/** An inclusive byte range inside a file. */
export interface ByteRange {
  /** First byte. */
  start: number;
  /** Last byte (inclusive). */
  end: number;
}

/** A syntactically valid range that lies wholly past the end of the file: HTTP 416. */
export class RangeNotSatisfiableError extends InvalidArgumentError {
  /** Status the error filter answers with (rather than the table's 400). */
  readonly httpStatus = 416;
  constructor(readonly size: number) {
    super(`range not satisfiable: the file has ${size} bytes`);
    this.name = 'RangeNotSatisfiableError';
  }
}

/** The ETag of a version with this digest. */
export const etagOf = (sha256: string): string => `"${sha256}"`;

/** True when an If-None-Match header matches `etag` (`*`, or any listed tag, weak comparison). */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

/**
 * The byte range asked for by a Range header, for a file of `size` bytes. Undefined means "send the
 * whole file" (no header, another unit, several ranges, or a header RFC 9110 says to ignore).
 * Throws RangeNotSatisfiableError when the range starts past the end.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=\s*(\d{0,16})\s*-\s*(\d{0,16})\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) throw new RangeNotSatisfiableError(size);
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) throw new RangeNotSatisfiableError(size);
  return { start, end: m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1) };
}

/**
 * The first byte a Range header asks for when that is known before the file's size (`bytes=a-` or
 * `bytes=a-b`), else 0: where the node may start reading. Consistent with parseRange, which then
 * answers a range starting there (or 416).
 */
export function rangeStartHint(header: string | undefined): number {
  if (header === undefined) return 0;
  const m = /^bytes=\s*(\d{1,16})\s*-\s*(\d{0,16})\s*$/i.exec(header);
  if (!m || (m[2] !== '' && Number(m[2]) < Number(m[1]))) return 0;
  return Number(m[1]);
}

/** n of a suffix Range `bytes=-n` (the last n bytes), or undefined for any other header. */
export function suffixLength(header: string | undefined): number | undefined {
  const m = header === undefined ? null : /^bytes=\s*-\s*(\d{1,16})\s*$/i.exec(header);
  return m ? Number(m[1]) : undefined;
}

/**
 * Whether to honour a Range given If-Range: only when If-Range is absent or names the current ETag
 * (a date is never a strong enough validator here).
 */
export function rangeApplies(ifRange: string | undefined, etag: string): boolean {
  return ifRange === undefined || ifRange.trim() === etag;
}

/**
 * The bytes [start, end] of a stream of frames. Stops reading (which cancels the source) once the end
 * is reached; DataLossError if the source ends first.
 */
export async function* sliceFrames(frames: AsyncIterable<Buffer>, range: ByteRange): AsyncGenerator<Buffer> {
  let pos = 0;
  for await (const frame of frames) {
    const from = Math.max(range.start - pos, 0);
    const to = Math.min(range.end + 1 - pos, frame.length);
    pos += frame.length;
    if (to > from) yield frame.subarray(from, to);
    if (pos > range.end) return;
  }
  throw new DataLossError(`file ended at byte ${pos}, before the range's end ${range.end}`);
}
