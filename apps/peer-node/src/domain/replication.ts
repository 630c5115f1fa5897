/**
 * The replication backlog: every copy of an object this node still owes a peer, queued per peer and
 * sent over one lazily opened StoreChunk session per (peer, folder). Uploads enqueue their copies here
 * and wait only for their write quorum; the rest completes in the background and stays counted here
 * until acknowledged or failed. An entry keeps its bytes only until its upload stops waiting for it
 * (`release`); after that the bytes are re-read from the local store when the entry's turn comes, so a
 * slow peer costs queue entries, not memory. Repair pushes go through a second, rate-limited lane.
 */
import type { Logger } from 'pino';
import { CancelledError } from '@distri-vault/shared';
import type { ObjectKind, PeersPort, ReplicaSession, StoragePort } from './ports';

/** One copy owed to one peer. */
export interface ReplicationRequest {
  /** Folder of the object (its owner's server ID); also the folder it is stored under on the peer. */
  folder: string;
  kind: ObjectKind;
  id: string;
  /** Byte length of the object (for the backlog's byte count and the rate limit). */
  size: number;
  /** The bytes, when the caller has them at hand; otherwise they are read from the local store. */
  data?: Buffer;
}

/** The caller's grip on one queued copy. */
export interface ReplicationHandle {
  /** Resolves when the peer acknowledged the copy (durable there); rejects when it could not be sent. */
  readonly done: Promise<void>;
  /** Drops the bytes held for this copy if not yet sent: they will be re-read from the local store. */
  release(): void;
  /** Withdraws the copy if it has not been sent yet (its `done` then rejects with CancelledError). */
  cancel(): void;
}

/** Backlog figures, for GetNodeInfo and logs. */
export interface BacklogStats {
  /** Copies queued or in flight. */
  objects: number;
  /** Their bytes. */
  bytes: number;
  /** Copies acknowledged since start. */
  sent: number;
  /** Bytes acknowledged since start. */
  sentBytes: number;
  /** Of those, the repair lane's copies and bytes. */
  repairSent: number;
  repairSentBytes: number;
  /** Copies that could not be delivered since start (left to repair). */
  failed: number;
  /** Per peer with anything pending, by server ID. */
  peers: { peerId: string; objects: number; bytes: number }[];
}

/** A token bucket: `take(n)` waits until n tokens (bytes) are available; refills at `ratePerSec`. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    readonly ratePerSec: number,
    readonly burst: number = ratePerSec,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void> = defaultSleep,
  ) {
    this.tokens = burst;
    this.last = now();
  }
  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.ratePerSec) / 1000);
    this.last = t;
  }
  /** Waits for `n` tokens (n may exceed the burst: the debt is then paid by waiting). */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    this.refill();
    this.tokens -= n;
    while (this.tokens < 0) {
      if (signal?.aborted) throw new CancelledError('rate limiter wait cancelled');
      await this.sleep(Math.max(1, Math.ceil((-this.tokens * 1000) / this.ratePerSec)), signal);
      this.refill();
    }
  }
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Largest object whose bytes a released entry may keep (`BacklogOptions.retainBytes` bounds the sum). */
export const RETAIN_MAX_OBJECT_BYTES = 64 * 1024;
/** Default of `BacklogOptions.retainBytes`. */
export const DEFAULT_RETAIN_BYTES = 4 * 1024 * 1024;

interface Entry extends ReplicationRequest {
  peerId: string;
  /** The bytes were kept past `release` and count against the retain budget. */
  retained: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
  dispatched: boolean;
  cancelled: boolean;
}

/** Collaborators of the backlog. */
export interface BacklogComponents {
  storage: StoragePort;
  peers: PeersPort;
  log: Logger;
}

/** Settings of the backlog. */
export interface BacklogOptions {
  /** Copies in flight per peer and lane. */
  window: number;
  /** Rate limit of the repair lane; none when absent. */
  repairBucket?: TokenBucket;
  /**
   * While client copies are flowing (one was queued within the last second), repair bytes cost this many
   * tokens each: the repair lane slows to 1/clientPriority of its rate so client writes keep most of the
   * machine. Default 4; 1 turns it off.
   */
  clientPriority?: number;
  /**
   * Bytes of released small objects (at most RETAIN_MAX_OBJECT_BYTES each) kept in memory instead of being
   * re-read from the local store when sent; default DEFAULT_RETAIN_BYTES, 0 keeps none.
   */
  retainBytes?: number;
  /** Aborted when the node stops. */
  signal?: AbortSignal;
}

type Lane = 'client' | 'repair';

/** Everything owed to one peer. */
class PeerSender {
  readonly queues: Record<Lane, Entry[]> = { client: [], repair: [] };
  private readonly running: Record<Lane, boolean> = { client: false, repair: false };
  private readonly sessions = new Map<string, Promise<ReplicaSession>>();
  objects = 0;
  bytes = 0;

  constructor(
    readonly peerId: string,
    private readonly owner: ReplicationBacklog,
  ) {}

  kick(lane: Lane): void {
    if (this.running[lane]) return;
    this.running[lane] = true;
    void this.run(lane).finally(() => {
      this.running[lane] = false;
      if (this.queues[lane].length) this.kick(lane);
      else this.maybeIdle();
    });
  }

  private async run(lane: Lane): Promise<void> {
    const tasks = new Set<Promise<void>>();
    for (;;) {
      const e = this.queues[lane].shift();
      if (!e) break;
      if (e.cancelled) continue;
      while (tasks.size >= this.owner.o.window) await Promise.race(tasks);
      e.dispatched = true;
      const t: Promise<void> = this.sendOne(e, lane).finally(() => tasks.delete(t));
      tasks.add(t);
    }
    await Promise.all(tasks);
  }

  private session(folder: string): Promise<ReplicaSession> {
    let s = this.sessions.get(folder);
    if (!s) {
      s = this.owner.c.peers.openReplica(this.peerId, folder, this.owner.o.signal);
      s.catch(() => this.sessions.delete(folder));
      this.sessions.set(folder, s);
    }
    return s;
  }

  private async sendOne(e: Entry, lane: Lane): Promise<void> {
    const signal = this.owner.o.signal;
    try {
      if (!e.data) this.owner.rereads++;
      const data = e.data ?? (await this.owner.c.storage.get(e.folder, e.kind, e.id, signal));
      this.owner.dropData(e);
      if (e.size !== data.length) {
        // Repair entries are queued before their size is known.
        this.bytes += data.length - e.size;
        e.size = data.length;
      }
      if (lane === 'repair' && this.owner.o.repairBucket) await this.owner.o.repairBucket.take(data.length * this.owner.repairCost(), signal);
      const sp = this.session(e.folder);
      const s = await sp;
      try {
        await s.send({ kind: e.kind, id: e.id, data }, signal);
      } catch (err) {
        // The session is broken for good (StoreSession already tried to resume): the next copy opens a new one.
        if (this.sessions.get(e.folder) === sp) this.sessions.delete(e.folder);
        s.abort();
        throw err;
      }
      this.owner.settle(this, e, undefined, lane);
    } catch (err) {
      this.owner.settle(this, e, err, lane);
    }
  }

  /** Closes the sessions once nothing is queued or in flight. */
  private maybeIdle(): void {
    if (this.running.client || this.running.repair || this.queues.client.length || this.queues.repair.length) return;
    for (const [folder, sp] of [...this.sessions]) {
      this.sessions.delete(folder);
      sp.then(
        (s) => s.close(),
        () => undefined,
      ).catch((err) => this.owner.c.log.warn({ peer: this.peerId, folder, err: (err as Error).message }, 'closing replica stream failed'));
    }
    this.owner.onIdle(this);
  }
}

/** The node's replication backlog. */
export class ReplicationBacklog {
  private readonly senders = new Map<string, PeerSender>();
  private sent = 0;
  private sentBytes = 0;
  private repairSent = 0;
  private repairSentBytes = 0;
  private failed = 0;
  private idleWaiters: (() => void)[] = [];
  private clientBusyUntil = 0;
  /** Bytes of released entries kept in memory (see `retainBytes`). */
  private retained = 0;
  /** Bytes of released entries currently kept in memory. */
  get retainedBytes(): number {
    return this.retained;
  }
  /** Copies sent from bytes re-read from the local store, since start (for tests and figures). */
  rereads = 0;

  constructor(
    readonly c: BacklogComponents,
    readonly o: BacklogOptions,
  ) {}

  /** Queues one copy of an object for `peerId`. Client copies go before repair copies. */
  enqueue(peerId: string, req: ReplicationRequest, lane: Lane = 'client'): ReplicationHandle {
    if (lane === 'client') this.clientBusyUntil = Date.now() + 1000;
    let sender = this.senders.get(peerId);
    if (!sender) {
      sender = new PeerSender(peerId, this);
      this.senders.set(peerId, sender);
    }
    let entry!: Entry;
    const done = new Promise<void>((resolve, reject) => {
      entry = { ...req, peerId, resolve, reject, dispatched: false, cancelled: false, retained: false };
    });
    done.catch(() => undefined); // background copies are awaited by nobody; their failures are counted and logged
    sender.objects++;
    sender.bytes += req.size;
    sender.queues[lane].push(entry);
    sender.kick(lane);
    const s = sender;
    return {
      done,
      release: () => {
        if (entry.dispatched || !entry.data || entry.retained) return;
        const size = entry.data.length;
        if (size <= RETAIN_MAX_OBJECT_BYTES && this.retained + size <= (this.o.retainBytes ?? DEFAULT_RETAIN_BYTES)) {
          entry.retained = true;
          this.retained += size;
        } else {
          entry.data = undefined;
        }
      },
      cancel: () => {
        if (entry.dispatched || entry.cancelled) return;
        entry.cancelled = true;
        this.dropData(entry);
        s.objects--;
        s.bytes -= entry.size;
        entry.reject(new CancelledError('replication withdrawn'));
        this.checkIdle();
      },
    };
  }

  /** Lets go of an entry's bytes (sent, or withdrawn), returning them to the retain budget if they counted. */
  dropData(e: Entry): void {
    if (e.retained && e.data) this.retained -= e.data.length;
    e.retained = false;
    e.data = undefined;
  }

  /** Tokens per repair byte now: more while client copies are flowing. */
  repairCost(): number {
    return Date.now() < this.clientBusyUntil ? Math.max(1, this.o.clientPriority ?? 4) : 1;
  }

  /** Called by a sender when a copy was acknowledged (err undefined) or failed. */
  settle(sender: PeerSender, e: Entry, err: unknown, lane: Lane): void {
    sender.objects--;
    sender.bytes -= e.size;
    if (err === undefined) {
      this.sent++;
      this.sentBytes += e.size;
      if (lane === 'repair') {
        this.repairSent++;
        this.repairSentBytes += e.size;
      }
      e.resolve();
    } else {
      this.failed++;
      this.c.log.warn({ peer: e.peerId, folder: e.folder, chunk: e.id, kind: e.kind, err: (err as Error).message }, 'replica copy failed; left to repair');
      e.reject(err);
    }
    if (sender.objects === 0) this.checkIdle();
  }

  onIdle(sender: PeerSender): void {
    if (sender.objects === 0 && this.senders.get(sender.peerId) === sender) this.senders.delete(sender.peerId);
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.stats().objects > 0) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.stats().objects === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Current figures. */
  stats(): BacklogStats {
    const peers = [...this.senders.values()].filter((s) => s.objects > 0).map((s) => ({ peerId: s.peerId, objects: s.objects, bytes: s.bytes }));
    return {
      objects: peers.reduce((n, p) => n + p.objects, 0),
      bytes: peers.reduce((n, p) => n + p.bytes, 0),
      sent: this.sent,
      sentBytes: this.sentBytes,
      repairSent: this.repairSent,
      repairSentBytes: this.repairSentBytes,
      failed: this.failed,
      peers: peers.sort((a, b) => (a.peerId < b.peerId ? -1 : 1)),
    };
  }
}
