/**
 * Garbage collection of what vault-key rotations and shreds leave behind (design:
 * apps/crypto-service/README.md, "Garbage of rotations and shreds").
 *
 * After a rotation the manifests it replaced, and the shredded versions' manifests and chunks, are
 * unreadable ciphertext on every disk that holds them. Peers read nothing, so only the owner can say what
 * is garbage: it writes a **GC record**, a plaintext list of its folder's object IDs signed with its
 * Ed25519 identity key, stored and replicated as a third kind of object ('gc') to every member. Any node
 * checks a record offline (the public key hashes to the folder's server ID, the signature holds), deletes
 * the listed objects of that folder and keeps their IDs as **tombstones** for good: a tombstoned object is
 * never stored again (StoreChunk acknowledges it without storing), never pushed by repair, never fetched by
 * anti-entropy or a recovery. IDs are SHA-256 of ciphertext under random nonces and per-version keys, so a
 * garbage ID never comes back as a legitimate object.
 *
 * Record bytes: the line `distri-vault gc record v1`, then one JSON object:
 * `{"folder","createdUnixMs","publicKey"(base64, 32 bytes),"chunks":[ids],"manifests":[ids],"signature"(base64)}`;
 * the signature is over the same bytes with `"signature"` left out (keys in that order).
 */
import { sign, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from '@distri-vault/shared/errors';
import { isObjectId } from '@distri-vault/shared/ids';
import { verifySignature } from './handshake';
import { serverIdOf } from './identity';
import type { StoragePort, StoredObject } from './ports';
import { objectIdOf } from './object-id';

const MAGIC = 'distri-vault gc record v1\n';

/** Most IDs (chunks + manifests) in one record: ~70 bytes each, well under the 8 MiB object limit. */
export const MAX_GC_RECORD_IDS = 20_000;

/** A verified GC record. */
export interface GcRecord {
  folder: string;
  createdUnixMs: number;
  chunks: string[];
  manifests: string[];
}

const objectId = z.string().refine(isObjectId, 'not an object ID (64 lowercase hex characters)');
const recordSchema = z
  .object({
    folder: z.string(),
    createdUnixMs: z.number().int().nonnegative(),
    publicKey: z.string(),
    chunks: z.array(objectId),
    manifests: z.array(objectId),
    signature: z.string(),
  })
  .strict();


/** The signed bytes: everything but the signature, keys in a fixed order. */
function unsignedBytes(r: GcRecord, publicKey: Buffer): Buffer {
  const body = JSON.stringify({ folder: r.folder, createdUnixMs: r.createdUnixMs, publicKey: publicKey.toString('base64'), chunks: r.chunks, manifests: r.manifests });
  return Buffer.from(MAGIC + body, 'utf8');
}

/**
 * Seals GC records for `folder` (the signer's own) naming these objects: one record per
 * MAX_GC_RECORD_IDS IDs, each a content-addressed object ready to store.
 */
export function sealGcRecords(
  signer: { serverId: string; publicKey: Buffer; privateKey: KeyObject },
  garbage: { chunks: string[]; manifests: string[] },
  now = Date.now(),
): StoredObject[] {
  const manifests = [...new Set(garbage.manifests)].sort();
  const chunks = [...new Set(garbage.chunks)].sort();
  const out: StoredObject[] = [];
  // Manifest IDs first, then chunk IDs, MAX_GC_RECORD_IDS to a record.
  for (let i = 0; i < manifests.length + chunks.length; i += MAX_GC_RECORD_IDS) {
    const end = i + MAX_GC_RECORD_IDS;
    const r: GcRecord = { folder: signer.serverId, createdUnixMs: now, manifests: manifests.slice(i, end), chunks: chunks.slice(Math.max(0, i - manifests.length), Math.max(0, end - manifests.length)) };
    const signature = sign(null, unsignedBytes(r, signer.publicKey), signer.privateKey);
    const body = JSON.stringify({ folder: r.folder, createdUnixMs: r.createdUnixMs, publicKey: signer.publicKey.toString('base64'), chunks: r.chunks, manifests: r.manifests, signature: signature.toString('base64') });
    const data = Buffer.from(MAGIC + body, 'utf8');
    out.push({ kind: 'gc', id: objectIdOf(data), data });
  }
  return out;
}

/**
 * Checks a GC record offered for `folder`: INVALID_ARGUMENT when it is not a well-formed record,
 * PERMISSION_DENIED when it is not the folder owner's (another folder, a key that is not the folder's,
 * a signature that does not hold). Changes nothing.
 */
export function openGcRecord(folder: string, data: Uint8Array): GcRecord {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  if (!text.startsWith(MAGIC)) throw new InvalidArgumentError('GC record: does not start with the record header');
  let parsed: z.infer<typeof recordSchema>;
  try {
    parsed = recordSchema.parse(JSON.parse(text.slice(MAGIC.length)));
  } catch (err) {
    throw new InvalidArgumentError(`GC record: malformed (${(err as Error).message.slice(0, 200)})`);
  }
  if (parsed.chunks.length + parsed.manifests.length > MAX_GC_RECORD_IDS) throw new InvalidArgumentError(`GC record: more than ${MAX_GC_RECORD_IDS} IDs`);
  if (parsed.folder !== folder) throw new PermissionDeniedError(`GC record: written for folder ${parsed.folder}, offered for ${folder}`);
  const publicKey = Buffer.from(parsed.publicKey, 'base64');
  if (publicKey.length !== 32 || serverIdOf(publicKey) !== folder) throw new PermissionDeniedError('GC record: its key is not the folder owner\'s');
  const r: GcRecord = { folder, createdUnixMs: parsed.createdUnixMs, chunks: parsed.chunks, manifests: parsed.manifests };
  if (!verifySignature(publicKey, unsignedBytes(r, publicKey), Buffer.from(parsed.signature, 'base64'))) throw new PermissionDeniedError('GC record: the owner\'s signature does not hold');
  return r;
}

/** What applying records did. */
export interface GcStats {
  /** Records verified and applied since start. */
  records: number;
  /** Tombstoned IDs, all folders. */
  tombstones: number;
  /** Objects deleted from this node's disk because a record named them. */
  deleted: number;
}

/**
 * This node's tombstones, built from the GC records it holds: loaded per folder from the local store the
 * first time the folder is used, and extended by every record that arrives. Applying a record deletes the
 * listed objects of that folder here.
 */
export class Garbage {
  private readonly dead = new Map<string, Set<string>>();
  private readonly applied = new Set<string>();
  private readonly loading = new Map<string, Promise<void>>();
  private readonly loaded = new Set<string>();
  private readonly applying = new Map<string, Promise<number>>();
  private readonly counts: GcStats = { records: 0, tombstones: 0, deleted: 0 };

  constructor(private readonly c: { storage: StoragePort; log: Logger }) {}

  /** True when a GC record this node holds names `id` in `folder`. */
  isDead(folder: string, id: string): boolean {
    return this.dead.get(folder)?.has(id) ?? false;
  }

  /** The IDs of `ids` that are not tombstoned in `folder`. */
  live(folder: string, ids: string[]): string[] {
    const d = this.dead.get(folder);
    return d ? ids.filter((id) => !d.has(id)) : ids;
  }

  stats(): GcStats {
    return { ...this.counts };
  }

  /**
   * Reads and applies the records of `folder` held on this node's disk that are not applied yet: once per
   * process, or again with `rescan` (the repair pass does, so a record stored but not applied — a crash or
   * a failed delete in between — is applied within a pass).
   */
  load(folder: string, signal?: AbortSignal, rescan = false): Promise<void> {
    let p = this.loading.get(folder);
    if (!p && this.loaded.has(folder) && !rescan) return Promise.resolve();
    if (!p) {
      p = (async () => {
        for await (const ids of this.c.storage.list(folder, 'gc', signal)) {
          for (const id of ids) {
            if (this.applied.has(`${folder}/${id}`)) continue;
            let data: Buffer;
            try {
              data = await this.c.storage.get(folder, 'gc', id, signal);
            } catch (err) {
              if (signal?.aborted) throw err;
              // Lost or corrupt here: repair brings it back from a peer, and it is applied then.
              this.c.log.warn({ folder, record: id, err: (err as Error).message }, 'GC record unreadable here');
              continue;
            }
            await this.apply(folder, { kind: 'gc', id, data }, signal);
          }
        }
      })();
      this.loading.set(folder, p);
      // A failed load (storage down, cancelled) is tried again next time.
      p.then(
        () => {
          this.loaded.add(folder);
          this.loading.delete(folder);
        },
        () => this.loading.delete(folder),
      );
    }
    return p;
  }

  /**
   * Verifies `record` (openGcRecord: throws, changing nothing, when it is not the owner's), tombstones the IDs
   * it lists and deletes those objects here. Storing the record itself is the caller's business; apply it
   * after storing, so a crash in between leaves a stored record that the next load applies.
   */
  async apply(folder: string, record: StoredObject, signal?: AbortSignal): Promise<number> {
    const r = openGcRecord(folder, record.data);
    const key = `${folder}/${record.id}`;
    // Applied already (the same record offered again by another peer): its tombstones hold, and a named
    // object that came back since is the repair pass's to remove. One application at a time per record.
    if (this.applied.has(key)) return 0;
    const running = this.applying.get(key);
    if (running) return running.then(() => 0);
    const run = this.deleteNamed(folder, key, record.id, r, signal);
    this.applying.set(key, run);
    try {
      return await run;
    } finally {
      this.applying.delete(key);
    }
  }

  private async deleteNamed(folder: string, key: string, recordId: string, r: GcRecord, signal?: AbortSignal): Promise<number> {
    let set = this.dead.get(folder);
    if (!set) this.dead.set(folder, (set = new Set()));
    for (const id of [...r.chunks, ...r.manifests]) {
      if (set.has(id)) continue;
      set.add(id);
      this.counts.tombstones++;
    }
    let deleted = 0;
    for (const [kind, ids] of [['chunk', r.chunks], ['manifest', r.manifests]] as const) {
      for (const id of ids) {
        try {
          if (await this.c.storage.delete(folder, kind, id, signal)) deleted++;
        } catch (err) {
          if (signal?.aborted || !(err instanceof NotFoundError)) throw err;
        }
      }
    }
    this.counts.deleted += deleted;
    // Marked once deleted, so a load after a failure here tries the deletions again.
    this.counts.records++;
    this.applied.add(key);
    if (deleted) this.c.log.info({ folder, record: recordId, deleted, listed: r.chunks.length + r.manifests.length }, 'GC record applied: garbage deleted');
    return deleted;
  }
}
