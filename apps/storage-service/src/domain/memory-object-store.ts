/**
 * An in-memory ObjectStore: the reference behaviour the disk store is checked against, and a fast fake
 * for callers' tests. Holds every object in memory, so it is only for tests and small tools.
 */
import { NotFoundError } from '@distri-vault/shared/errors';
import { assertServerId } from '@distri-vault/shared/ids';
import {
  type FolderStat,
  type ListOptions,
  type ObjectKind,
  type ObjectStore,
  type PutResult,
  type StoreCallOptions,
  assertDigest,
  assertHas,
  assertKey,
  assertList,
  assertPut,
  throwIfAborted,
  OBJECT_KINDS,
} from './object-store';

interface Entry {
  data: Buffer;
  // Incremented on every write, so tests can prove a duplicate put wrote nothing.
  generation: number;
}

/** Components of a MemoryObjectStore (none needed today). */
export type MemoryObjectStoreComponents = Record<string, never>;

/** Options of a MemoryObjectStore (none today). */
export type MemoryObjectStoreOptions = Record<string, never>;

/** An ObjectStore kept in a Map. */
export class MemoryObjectStore implements ObjectStore {
  private readonly folderMap = new Map<string, Record<ObjectKind, Map<string, Entry>>>();
  private generation = 0;

  constructor(_components: MemoryObjectStoreComponents = {}, _options: MemoryObjectStoreOptions = {}) {}

  async put(folder: string, kind: ObjectKind, id: string, data: Uint8Array, options: StoreCallOptions = {}): Promise<PutResult> {
    const k = assertPut(folder, kind, id, data);
    assertDigest(id, data);
    throwIfAborted(options.signal);
    const objects = this.objects(folder, k, true);
    if (objects.has(id)) return { created: false };
    objects.set(id, { data: Buffer.from(data), generation: ++this.generation });
    return { created: true };
  }

  async get(folder: string, kind: ObjectKind, id: string, options: StoreCallOptions = {}): Promise<Buffer> {
    const k = assertKey(folder, kind, id);
    throwIfAborted(options.signal);
    const entry = this.objects(folder, k, false)?.get(id);
    if (!entry) throw new NotFoundError(`${k} ${id} not found in folder ${folder}`);
    return Buffer.from(entry.data);
  }

  async has(folder: string, kind: ObjectKind, ids: readonly string[], options: StoreCallOptions = {}): Promise<boolean[]> {
    const k = assertHas(folder, kind, ids);
    throwIfAborted(options.signal);
    const objects = this.objects(folder, k, false);
    return ids.map((id) => objects?.has(id) ?? false);
  }

  async *list(folder: string, kind: ObjectKind, options: ListOptions = {}): AsyncGenerator<string[]> {
    const { kind: k, startAfter, batchSize } = assertList(folder, kind, options);
    const objects = this.objects(folder, k, false);
    if (!objects) return;
    const ids = [...objects.keys()].filter((id) => id > startAfter).sort();
    for (let i = 0; i < ids.length; i += batchSize) {
      throwIfAborted(options.signal);
      yield ids.slice(i, i + batchSize);
    }
  }

  async delete(folder: string, kind: ObjectKind, id: string, options: StoreCallOptions = {}): Promise<boolean> {
    const k = assertKey(folder, kind, id);
    throwIfAborted(options.signal);
    return this.objects(folder, k, false)?.delete(id) ?? false;
  }

  async stat(folder: string, options: StoreCallOptions = {}): Promise<FolderStat> {
    assertServerId(folder);
    throwIfAborted(options.signal);
    const sum = (kind: ObjectKind) => {
      let count = 0;
      let bytes = 0;
      for (const e of this.objects(folder, kind, false)?.values() ?? []) {
        count++;
        bytes += e.data.byteLength;
      }
      return [count, bytes] as const;
    };
    const [chunks, chunkBytes] = sum('chunk');
    const [manifests, manifestBytes] = sum('manifest');
    const [gcRecords, gcRecordBytes] = sum('gc');
    return { chunks, chunkBytes, manifests, manifestBytes, gcRecords, gcRecordBytes };
  }

  async folders(options: StoreCallOptions = {}): Promise<string[]> {
    throwIfAborted(options.signal);
    return [...this.folderMap.keys()].sort();
  }

  async close(): Promise<void> {}

  /**
   * Every stored entry as `folder/kind/id:size:generation`, sorted. For tests: a rewrite changes the
   * generation, so equal snapshots prove nothing was written.
   */
  snapshot(): string[] {
    const out: string[] = [];
    for (const [folder, kinds] of this.folderMap) {
      for (const kind of OBJECT_KINDS) {
        for (const [id, e] of kinds[kind]) out.push(`${folder}/${kind}/${id}:${e.data.byteLength}:${e.generation}`);
      }
    }
    return out.sort();
  }

  private objects(folder: string, kind: ObjectKind, create: true): Map<string, Entry>;
  private objects(folder: string, kind: ObjectKind, create: false): Map<string, Entry> | undefined;
  private objects(folder: string, kind: ObjectKind, create: boolean): Map<string, Entry> | undefined {
    let kinds = this.folderMap.get(folder);
    if (!kinds) {
      if (!create) return undefined;
      kinds = { chunk: new Map(), manifest: new Map(), gc: new Map() };
      this.folderMap.set(folder, kinds);
    }
    return kinds[kind];
  }
}
