/**
 * Folder summaries for anti-entropy (SyncFolder). The objects of a folder fall into buckets by kind and
 * by the first `bits` bits of their ID; a bucket is summarised by its count and a digest of its IDs.
 * Two nodes compare summaries and list each other only the buckets that differ, so nodes that differ by
 * a few objects exchange a few bucket listings, not their folders.
 *
 * The digest is the sum modulo 2^256 of SHA-256(binary ID) over the bucket (a multiset hash): it does
 * not depend on order, so a summary is built in one streaming pass over an unsorted listing, holding
 * only the buckets (at most 2 * 2^12 of 40 bytes). Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import { OBJECT_KINDS, type ObjectKind } from './ports';

/** Fewest and most prefix bits a summary may use (16 to 4096 buckets per kind). */
export const MIN_SUMMARY_BITS = 4;
export const MAX_SUMMARY_BITS = 12;
/** Objects per bucket the width is chosen for: a differing bucket costs about this many entries. */
export const TARGET_PER_BUCKET = 16;

const KINDS = OBJECT_KINDS;
const ID_RE = /^[0-9a-f]{64}$/;

/** One bucket's summary. */
export interface BucketSummary {
  kind: ObjectKind;
  prefix: number;
  count: number;
  /** 32 bytes, big-endian sum mod 2^256 of SHA-256(binary ID). */
  digest: Buffer;
}

/** Names one bucket. */
export interface BucketRef {
  kind: ObjectKind;
  prefix: number;
}

/** The prefix width fitting a folder of `objects` objects: about TARGET_PER_BUCKET per bucket. */
export function summaryBits(objects: number): number {
  const want = Math.ceil(Math.log2(Math.max(1, objects) / TARGET_PER_BUCKET));
  return Math.min(MAX_SUMMARY_BITS, Math.max(MIN_SUMMARY_BITS, want));
}

/** The bucket prefix of an ID (lowercase hex) at `bits` bits. */
export function prefixOf(id: string, bits: number): number {
  return parseInt(id.slice(0, 4), 16) >>> (16 - bits);
}

const key = (kind: ObjectKind, prefix: number) => `${kind}:${prefix}`;

/** Adds b into a (both 32 bytes, big-endian) modulo 2^256. */
function addInto(a: Buffer, b: Buffer): void {
  let carry = 0;
  for (let i = 31; i >= 0; i--) {
    const s = a[i]! + b[i]! + carry;
    a[i] = s & 0xff;
    carry = s >>> 8;
  }
}

/** Builds a summary from IDs added in any order. */
export class SummaryBuilder {
  private readonly buckets = new Map<string, BucketSummary>();
  constructor(readonly bits: number) {
    if (!Number.isInteger(bits) || bits < MIN_SUMMARY_BITS || bits > MAX_SUMMARY_BITS) throw new RangeError(`summary bits must be ${MIN_SUMMARY_BITS}..${MAX_SUMMARY_BITS}`);
  }
  /** Adds one ID (64 lowercase hex). Adding the same ID twice counts it twice: listings are sets. */
  add(kind: ObjectKind, id: string): void {
    const prefix = prefixOf(id, this.bits);
    const k = key(kind, prefix);
    let b = this.buckets.get(k);
    if (!b) this.buckets.set(k, (b = { kind, prefix, count: 0, digest: Buffer.alloc(32) }));
    b.count++;
    addInto(b.digest, createHash('sha256').update(Buffer.from(id, 'hex')).digest());
  }
  /** The summary: non-empty buckets, sorted by kind then prefix. */
  build(): FolderSummary {
    const buckets = [...this.buckets.values()].sort((a, b) => (a.kind === b.kind ? a.prefix - b.prefix : a.kind < b.kind ? -1 : 1));
    return { bits: this.bits, buckets };
  }
}

/** A folder's summary. */
export interface FolderSummary {
  bits: number;
  /** Non-empty buckets only. */
  buckets: BucketSummary[];
}

/** Summarises lists of IDs per kind (each an async sequence of batches, in any order). */
export async function summarize(bits: number, list: (kind: ObjectKind) => AsyncIterable<string[]>): Promise<FolderSummary> {
  const b = new SummaryBuilder(bits);
  for (const kind of KINDS) for await (const ids of list(kind)) for (const id of ids) b.add(kind, id);
  return b.build();
}

/** Checks a summary received from a peer; throws RangeError naming the problem. */
export function checkSummary(s: FolderSummary): void {
  if (!Number.isInteger(s.bits) || s.bits < MIN_SUMMARY_BITS || s.bits > MAX_SUMMARY_BITS) throw new RangeError(`summary prefix bits ${s.bits} not in ${MIN_SUMMARY_BITS}..${MAX_SUMMARY_BITS}`);
  const seen = new Set<string>();
  for (const b of s.buckets) {
    if (!Number.isInteger(b.prefix) || b.prefix < 0 || b.prefix >= 1 << s.bits) throw new RangeError(`bucket prefix ${b.prefix} out of range`);
    if (!(b.count > 0) || !Number.isInteger(b.count)) throw new RangeError(`bucket count ${b.count} invalid`);
    if (b.digest.length !== 32) throw new RangeError('bucket digest must be 32 bytes');
    const k = key(b.kind, b.prefix);
    if (seen.has(k)) throw new RangeError(`bucket ${k} given twice`);
    seen.add(k);
  }
}

/** The buckets whose count or digest differ between two summaries of the same width (either side empty included). */
export function differingBuckets(a: FolderSummary, b: FolderSummary): BucketRef[] {
  if (a.bits !== b.bits) throw new RangeError('summaries of different widths');
  const other = new Map(b.buckets.map((x) => [key(x.kind, x.prefix), x]));
  const out: BucketRef[] = [];
  for (const x of a.buckets) {
    const y = other.get(key(x.kind, x.prefix));
    other.delete(key(x.kind, x.prefix));
    if (!y || y.count !== x.count || !y.digest.equals(x.digest)) out.push({ kind: x.kind, prefix: x.prefix });
  }
  for (const y of other.values()) out.push({ kind: y.kind, prefix: y.prefix });
  return out.sort((p, q) => (p.kind === q.kind ? p.prefix - q.prefix : p.kind < q.kind ? -1 : 1));
}

/** A set of buckets at one width, to ask "is this ID in a covered bucket?". */
export class BucketSet {
  private readonly keys: Set<string>;
  constructor(
    readonly bits: number,
    buckets: BucketRef[],
  ) {
    this.keys = new Set(buckets.map((b) => key(b.kind, b.prefix)));
  }
  get size(): number {
    return this.keys.size;
  }
  has(kind: ObjectKind, id: string): boolean {
    return this.keys.has(key(kind, prefixOf(id, this.bits)));
  }
}

/** True for a well-formed object ID. */
export const isObjectId = (id: string): boolean => ID_RE.test(id);

/**
 * The responder's side: its own summary at the requester's width, compared with the requester's.
 * Returns the buckets to list (those that differ).
 */
export async function coverageFor(requester: FolderSummary, list: (kind: ObjectKind) => AsyncIterable<string[]>): Promise<BucketRef[]> {
  checkSummary(requester);
  return differingBuckets(await summarize(requester.bits, list), requester);
}

/**
 * The requester's side of a summary-driven sync: tracks which buckets the responder covers and which
 * of its IDs it offered, so that after the inventory both directions of the difference are exact:
 * what the requester lacks (offered, not held: the SyncSink decides) and what the responder lacks
 * (held here in a covered bucket, not offered). Offered IDs are kept only for buckets the requester
 * has objects in, so a wiped node recovering keeps nothing.
 */
export class SyncDiff {
  private covered: BucketSet | undefined;
  private readonly localBuckets: Set<string>;
  private readonly offeredIds = new Set<string>();

  constructor(readonly local: FolderSummary) {
    this.localBuckets = new Set(local.buckets.map((b) => key(b.kind, b.prefix)));
  }

  /** Records the responder's coverage; throws RangeError on a width other than the summary's. */
  cover(bits: number, buckets: BucketRef[]): BucketSet {
    if (bits !== this.local.bits) throw new RangeError(`coverage at ${bits} bits, summary at ${this.local.bits}`);
    if (this.covered) throw new RangeError('coverage given twice');
    for (const b of buckets) if (!Number.isInteger(b.prefix) || b.prefix < 0 || b.prefix >= 1 << bits) throw new RangeError(`bucket prefix ${b.prefix} out of range`);
    return (this.covered = new BucketSet(bits, buckets));
  }

  /** Buckets covered (0 before the coverage arrives). */
  get coveredBuckets(): number {
    return this.covered?.size ?? 0;
  }

  /** Records inventory entries; throws RangeError for one outside the covered buckets. */
  offered(kind: ObjectKind, ids: string[]): void {
    if (!this.covered) throw new RangeError('inventory before coverage');
    for (const id of ids) {
      if (!isObjectId(id) || !this.covered.has(kind, id)) throw new RangeError(`inventory entry ${id} outside the covered buckets`);
      if (this.localBuckets.has(key(kind, prefixOf(id, this.local.bits)))) this.offeredIds.add(`${kind}:${id}`);
    }
  }

  /** Of the requester's own IDs, those in covered buckets that the responder did not offer. */
  lacking(kind: ObjectKind, localIds: string[]): string[] {
    if (!this.covered) return [];
    const covered = this.covered;
    return localIds.filter((id) => covered.has(kind, id) && !this.offeredIds.has(`${kind}:${id}`));
  }
}
