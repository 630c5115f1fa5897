/**
 * The owner's index of its own files: path -> versions, rebuilt from the manifests in its folder on
 * start and after recovery. Kept in memory (the manifests on disk are the source of truth).
 */
import type { Manifest } from './manifest';

/** One version of a file plus the ID of the manifest that records it. */
export interface IndexedVersion {
  manifestId: string;
  manifest: Manifest;
}

/** path -> versions, ascending. */
export class FileIndex {
  private readonly files = new Map<string, IndexedVersion[]>();

  /**
   * Adds a version. For a duplicate (same path and version) the higher `generation` wins (a key
   * rotation's replacement over the manifest it replaces); at equal generations the earlier-created one
   * stays. Returns true when the record became the indexed one.
   */
  add(manifestId: string, manifest: Manifest): boolean {
    const list = this.files.get(manifest.path) ?? [];
    const same = list.findIndex((v) => v.manifest.version === manifest.version);
    if (same >= 0) {
      const existing = list[same]!;
      if (existing.manifestId === manifestId) return false;
      const gNew = manifest.generation ?? 0;
      const gOld = existing.manifest.generation ?? 0;
      if (gNew < gOld || (gNew === gOld && existing.manifest.createdUnixMs <= manifest.createdUnixMs)) return false;
      list[same] = { manifestId, manifest };
    } else {
      list.push({ manifestId, manifest });
      list.sort((a, b) => a.manifest.version - b.manifest.version);
    }
    this.files.set(manifest.path, list);
    return true;
  }

  /** The record of (path, version) whatever its state (removed, deletion, history record), if any. */
  find(path: string, version: number): IndexedVersion | undefined {
    return this.files.get(path)?.find((v) => v.manifest.version === version);
  }

  /**
   * Every record of every path, split into those a key rotation must carry over (live and history
   * versions, deletion and history records) and the versions removed from their history (which a
   * rotation leaves behind: shredded).
   */
  keptAndRemoved(): { kept: IndexedVersion[]; removed: IndexedVersion[] } {
    const kept: IndexedVersion[] = [];
    const removed: IndexedVersion[] = [];
    for (const list of this.files.values()) {
      const gone = new Set(list.flatMap((v) => v.manifest.removes ?? []));
      for (const v of list) (gone.has(v.manifest.version) && !v.manifest.removes ? removed : kept).push(v);
    }
    return { kept, removed };
  }

  /** Highest version number recorded for `path` (deletions included), 0 if none. */
  latestVersion(path: string): number {
    const list = this.files.get(path);
    return list && list.length ? list[list.length - 1]!.manifest.version : 0;
  }

  /**
   * The versions of `path` a client sees, ascending: history records (manifests with `removes`) and the
   * versions they remove are left out.
   */
  versions(path: string): IndexedVersion[] {
    const list = this.files.get(path) ?? [];
    if (!list.some((v) => v.manifest.removes)) return list;
    const removed = new Set(list.flatMap((v) => v.manifest.removes ?? []));
    return list.filter((v) => !v.manifest.removes && !removed.has(v.manifest.version));
  }

  /** The latest version if it is live, or a specific version if it exists and is live. */
  get(path: string, version?: number): IndexedVersion | undefined {
    const list = this.versions(path);
    if (list.length === 0) return undefined;
    const v = version === undefined ? list[list.length - 1] : list.find((x) => x.manifest.version === version);
    return v && !v.manifest.deleted ? v : undefined;
  }

  /** Latest live version of each path under `prefix`, sorted by path. */
  list(prefix = ''): IndexedVersion[] {
    const out: IndexedVersion[] = [];
    for (const path of this.files.keys()) {
      if (!path.startsWith(prefix)) continue;
      const latest = this.versions(path).at(-1);
      if (latest && !latest.manifest.deleted) out.push(latest);
    }
    return out.sort((a, b) => (a.manifest.path < b.manifest.path ? -1 : a.manifest.path > b.manifest.path ? 1 : 0));
  }

  /** Number of live files. */
  liveCount(): number {
    return this.list().length;
  }

  /** Every version recorded (history records and removed versions included), path by path. */
  *all(): Iterable<IndexedVersion> {
    for (const list of this.files.values()) yield* list;
  }

  /** Every version a client can read (see versions()), deletions left out, path by path. */
  *live(): Iterable<IndexedVersion> {
    for (const path of this.files.keys()) for (const v of this.versions(path)) if (!v.manifest.deleted) yield v;
  }

  /**
   * Forgets the records with these manifest IDs (a rotation's shredded versions: no key opens them any
   * more, so an index loaded from disk would not have them either).
   */
  drop(manifestIds: ReadonlySet<string>): void {
    for (const [path, list] of this.files) {
      const left = list.filter((v) => !manifestIds.has(v.manifestId));
      if (left.length === list.length) continue;
      if (left.length) this.files.set(path, left);
      else this.files.delete(path);
    }
  }

  clear(): void {
    this.files.clear();
  }
}
