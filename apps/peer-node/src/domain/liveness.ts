/**
 * This node's notion of which members are gone, built from `connected()` sampled over time: a member
 * not connected for longer than the grace period is gone; it comes back the moment it is connected
 * again. Members first heard of as folder owners (a folder on disk, its owner never seen since start)
 * count as last seen at start-up, so every member gets the grace period after a restart. Kept behind
 * MembershipPort so a richer membership (suspect/down/left states) can replace it.
 */
import type { MembershipPort } from './ports';

/** What changed at one tick. */
export interface MembershipChange {
  /** Members seen connected for the first time. */
  joined: string[];
  /** Gone members connected again. */
  returned: string[];
  /** Members that just passed the grace period. */
  gone: string[];
}

/** Grace-period membership over a `connected()` source. */
export class GraceMembership implements MembershipPort {
  private readonly lastSeen = new Map<string, number>();
  private readonly goneNow = new Set<string>();
  private readonly startedAt: number;

  constructor(
    private readonly selfId: string,
    private readonly connected: () => string[],
    readonly graceMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  /** Samples `connected()` and reports what changed since the last tick. */
  tick(): MembershipChange {
    const t = this.now();
    const change: MembershipChange = { joined: [], returned: [], gone: [] };
    for (const id of this.connected()) {
      if (id === this.selfId) continue;
      if (!this.lastSeen.has(id)) change.joined.push(id);
      else if (this.goneNow.delete(id)) change.returned.push(id);
      this.lastSeen.set(id, t);
    }
    for (const [id, seen] of this.lastSeen) {
      if (!this.goneNow.has(id) && t - seen > this.graceMs) {
        this.goneNow.add(id);
        change.gone.push(id);
      }
    }
    return change;
  }

  /** Adds members known only by name (folder owners), as last seen at start-up. */
  observe(ids: Iterable<string>): void {
    for (const id of ids) if (id !== this.selfId && !this.lastSeen.has(id)) this.lastSeen.set(id, this.startedAt);
  }

  members(): string[] {
    return [...this.lastSeen.keys()].sort();
  }

  isGone(serverId: string): boolean {
    if (serverId === this.selfId) return false;
    const seen = this.lastSeen.get(serverId);
    return seen === undefined ? this.now() - this.startedAt > this.graceMs : this.now() - seen > this.graceMs;
  }
}
