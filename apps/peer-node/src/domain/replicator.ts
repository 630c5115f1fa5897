/**
 * Repair and rebalancing. For every folder this node holds, it learns which live members hold which
 * objects (one inventory per connected peer), then for every object it holds:
 * - desired holders = the first R members of the object's HRW ranking that are not gone;
 * - if this node is the first holder in ranking order, it pushes the object (read from its local store,
 *   through the backlog's rate-limited repair lane) to the desired members that lack it and are connected;
 * - if this node is not desired, it deletes its copy once every desired member is known to hold it,
 *   but never the owner's copy in its own folder.
 * Every node runs the same rules on its own view; duplicated pushes are idempotent, and a deletion needs
 * the desired holders confirmed by their own inventories, so views that briefly differ cost traffic,
 * not copies.
 *
 * GC records (domain/garbage.ts) are desired on every live member, not R of them: every holder of a
 * folder's objects must learn what is garbage. Objects a record names are neither pushed nor counted.
 */
import type { Logger } from 'pino';
import { rank } from './placement';
import type { Garbage } from './garbage';
import type { FolderInventory, InventoryPort, MembershipPort, ObjectKind, PeersPort, StoragePort } from './ports';
import type { ReplicationBacklog } from './replication';

/** Collaborators of the replicator. */
export interface ReplicatorComponents {
  storage: StoragePort;
  peers: PeersPort & InventoryPort;
  membership: MembershipPort & { observe?(ids: Iterable<string>): void };
  backlog: ReplicationBacklog;
  /** This node's tombstones; each folder's GC records are loaded before it is examined. */
  garbage: Pick<Garbage, 'load' | 'isDead'>;
  log: Logger;
}

/** Settings of the replicator. */
export interface ReplicatorOptions {
  serverId: string;
  /** Copies of every object, the owner's included. */
  replicas: number;
}

/** What one repair pass did. */
export interface RepairReport {
  folders: number;
  /** Objects of this node examined. */
  objects: number;
  /** Copies pushed (acknowledged) and their bytes. */
  pushed: number;
  pushedBytes: number;
  /** Pushes that failed (retried next pass). */
  failed: number;
  /** Own copies deleted because enough desired holders have them. */
  deleted: number;
  /** Objects below R copies among reachable holders after the pass (as far as this node knows). */
  under: number;
  durationMs: number;
  /** The same counts per folder, sorted by folder. */
  folderHealth: FolderHealth[];
}

/**
 * Replication health of one folder after a pass: the objects this node holds, counted against the
 * inventories it could read (its own and its connected peers'). Members it could not read count as
 * holding nothing, so a silent member shows up as under-replication rather than hiding it.
 */
export interface FolderHealth {
  folder: string;
  /** Objects (chunks and manifests) of the folder on this node. */
  objects: number;
  /** Of those, the chunks. */
  chunks: number;
  /** Objects with fewer than min(R, live members) copies among reachable holders. */
  under: number;
  /** Chunks among `under`. */
  chunksUnder: number;
  /** Objects no other reachable member holds. */
  soleCopy: number;
}

const KINDS: ObjectKind[] = ['gc', 'manifest', 'chunk'];

/** One node's repair loop body. */
export class Replicator {
  private running: Promise<RepairReport> | undefined;
  private again = false;
  /** The last pass's report. */
  last: RepairReport | undefined;

  constructor(
    private readonly c: ReplicatorComponents,
    private readonly o: ReplicatorOptions,
  ) {}

  /** Runs a pass now, or once more after the current one when one is running. */
  trigger(signal?: AbortSignal): Promise<RepairReport> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<RepairReport> => {
      try {
        let r: RepairReport;
        do {
          this.again = false;
          r = await this.runOnce(signal);
        } while (this.again && !signal?.aborted);
        return r;
      } finally {
        this.running = undefined;
      }
    };
    this.running = run();
    return this.running;
  }

  /** One full pass over every folder this node holds. */
  async runOnce(signal?: AbortSignal): Promise<RepairReport> {
    const started = Date.now();
    const self = this.o.serverId;
    const folders = new Set(await this.c.storage.listFolders(signal));
    folders.add(self);
    this.c.membership.observe?.(folders);
    const connected = new Set(this.c.peers.connected().filter((p) => p !== self));
    const live = [self, ...new Set([...this.c.membership.members(), ...connected])].filter((m) => m === self || !this.c.membership.isGone(m));
    const report: RepairReport = { folders: folders.size, objects: 0, pushed: 0, pushedBytes: 0, failed: 0, deleted: 0, under: 0, durationMs: 0, folderHealth: [] };
    for (const folder of [...folders].sort()) {
      if (signal?.aborted) break;
      await this.repairFolder(folder, live, connected, report, signal);
    }
    report.durationMs = Date.now() - started;
    this.last = report;
    if (report.pushed || report.deleted || report.failed || report.under) {
      const { folderHealth, ...totals } = report;
      this.c.log.info({ repair: totals, underFolders: folderHealth.filter((f) => f.under > 0).length }, 'repair pass');
    }
    return report;
  }

  private async repairFolder(folder: string, live: string[], connected: Set<string>, report: RepairReport, signal?: AbortSignal): Promise<void> {
    const self = this.o.serverId;
    // Who holds what, among the members whose inventory this node could read.
    const known = new Map<string, FolderInventory>();
    await this.c.garbage.load(folder, signal, true);
    const mine: FolderInventory = { chunk: new Set(), manifest: new Set(), gc: new Set() };
    for (const kind of KINDS) for await (const ids of this.c.storage.list(folder, kind, signal)) ids.forEach((id) => mine[kind].add(id));
    known.set(self, mine);
    for (const peer of [...connected].sort()) {
      if (this.c.membership.isGone(peer)) continue;
      try {
        known.set(peer, await this.c.peers.inventory(peer, folder, signal));
      } catch (err) {
        if (signal?.aborted) throw err;
        this.c.log.warn({ peer, folder, err: (err as Error).message }, 'inventory failed; peer left out of this pass');
      }
    }
    const pushes: Promise<void>[] = [];
    const deletions: { kind: ObjectKind; id: string; desired: string[] }[] = [];
    for (const kind of KINDS) {
      for (const id of mine[kind]) {
        if (this.c.garbage.isDead(folder, id)) {
          // Garbage that came back (a disk restored from a backup, a copy that raced its record): removed.
          deletions.push({ kind, id, desired: [] });
          continue;
        }
        if (kind !== 'gc') report.objects++;
        const ranking = rank(id, folder, live, live.includes(folder));
        const alive = ranking.filter((m) => m === self || !this.c.membership.isGone(m));
        const desired = kind === 'gc' ? alive : alive.slice(0, this.o.replicas);
        const holders = ranking.filter((m) => known.get(m)?.[kind].has(id));
        const lacking = desired.filter((d) => known.has(d) && !known.get(d)![kind].has(id));
        if (holders[0] === self) {
          for (const target of lacking) {
            if (!connected.has(target)) continue;
            const h = this.c.backlog.enqueue(target, { folder, kind, id, size: 0 }, 'repair');
            pushes.push(
              h.done.then(
                () => {
                  report.pushed++;
                  known.get(target)![kind].add(id);
                },
                () => void report.failed++,
              ),
            );
          }
        }
        if (!desired.includes(self) && folder !== self) deletions.push({ kind, id, desired });
      }
    }
    const sentBefore = this.c.backlog.stats().repairSentBytes;
    await Promise.all(pushes);
    report.pushedBytes += this.c.backlog.stats().repairSentBytes - sentBefore;
    for (const d of deletions) {
      if (signal?.aborted) return;
      if (!d.desired.every((m) => known.get(m)?.[d.kind].has(d.id))) continue;
      try {
        if (await this.c.storage.delete(folder, d.kind, d.id, signal)) report.deleted++;
        mine[d.kind].delete(d.id);
      } catch (err) {
        if (signal?.aborted) throw err;
        this.c.log.warn({ folder, chunk: d.id, err: (err as Error).message }, 'extra copy not deleted');
      }
    }
    const health: FolderHealth = { folder, objects: 0, chunks: 0, under: 0, chunksUnder: 0, soleCopy: 0 };
    const wanted = Math.min(this.o.replicas, live.length);
    for (const kind of KINDS) {
      if (kind === 'gc') continue;
      for (const id of mine[kind]) {
        if (this.c.garbage.isDead(folder, id)) continue;
        let copies = 0;
        for (const inv of known.values()) if (inv[kind].has(id)) copies++;
        health.objects++;
        if (kind === 'chunk') health.chunks++;
        if (copies <= 1) health.soleCopy++;
        if (copies < wanted) {
          health.under++;
          if (kind === 'chunk') health.chunksUnder++;
        }
      }
    }
    report.under += health.under;
    if (health.objects > 0 || folder === self) report.folderHealth.push(health);
  }
}
