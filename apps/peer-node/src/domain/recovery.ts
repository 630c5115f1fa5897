/**
 * Recovery of the owner's folder from its peers, with progress, and the anti-entropy schedule around it.
 *
 * A recovery run: SyncFolder (with a summary) with every connected peer, one after another, each object
 * verified by hash as it arrives (manifests also decrypted as they are indexed); then a fresh index built
 * from every manifest and swapped in; then every chunk of every live version checked for presence, any
 * missing one fetched (hedged, verified). Progress is readable at any time (status()), logged every few
 * seconds, and summarised in one log line at the end. One run at a time: starting while one runs joins it.
 */
import type { Logger } from 'pino';
import { CancelledError } from '@distri-vault/shared';
import type { ObjectKind } from './ports';
import type { ChunkCheck, FetchProgress, SyncFromResult } from './vault';

/** Where a recovery is. */
export type RecoveryPhase = 'idle' | 'syncing' | 'indexing' | 'verifying' | 'done' | 'failed';

/** Why a recovery runs. */
export type RecoveryTrigger = 'startup' | 'request';

/** Progress of the current or last recovery. */
export interface RecoveryStatus {
  phase: RecoveryPhase;
  /** Run number since start; 0 if none ran. */
  run: number;
  trigger: RecoveryTrigger | '';
  startedUnixMs: number;
  finishedUnixMs: number;
  peersDone: number;
  peersTotal: number;
  /** Peers whose sync succeeded. */
  peersOk: number;
  chunks: number;
  manifests: number;
  bytes: number;
  bytesPerSecond: number;
  files: number;
  chunksChecked: number;
  chunksMissing: number;
  errors: number;
  /** The last few error messages (at most 10). */
  errorMessages: string[];
  durationMs: number;
}

/** What a finished recovery restored (the older, synchronous shape of the API). */
export interface RecoverySummary {
  peers: number;
  chunks: number;
  manifests: number;
  bytes: number;
  files: number;
  durationMs: number;
}

/** The summary of a status. */
export function summaryOf(s: RecoveryStatus): RecoverySummary {
  return { peers: s.peersOk, chunks: s.chunks, manifests: s.manifests, bytes: s.bytes, files: s.files, durationMs: s.durationMs };
}

/** What a recovery needs of the folder (the Vault). */
export interface RecoverableFolder {
  connectedPeers(): string[];
  syncFrom(peerId: string, signal: AbortSignal, onFetch?: FetchProgress): Promise<SyncFromResult>;
  loadIndex(signal?: AbortSignal, onSkip?: (id: string, err: Error) => void): Promise<number>;
  checkLiveChunks(signal: AbortSignal, onProgress?: (c: ChunkCheck) => void, onFetch?: FetchProgress): Promise<ChunkCheck>;
  fileCount(): number;
}

/** One run started or joined. */
export interface RecoveryHandle {
  /** The status when started or joined. */
  status: RecoveryStatus;
  /** True if a run was already going. */
  joined: boolean;
  /** Resolves with the final status (never rejects; failures are in the status). */
  done: Promise<RecoveryStatus>;
}

const idle = (): RecoveryStatus => ({
  phase: 'idle',
  run: 0,
  trigger: '',
  startedUnixMs: 0,
  finishedUnixMs: 0,
  peersDone: 0,
  peersTotal: 0,
  peersOk: 0,
  chunks: 0,
  manifests: 0,
  bytes: 0,
  bytesPerSecond: 0,
  files: 0,
  chunksChecked: 0,
  chunksMissing: 0,
  errors: 0,
  errorMessages: [],
  durationMs: 0,
});

/** Runs recoveries of one folder, one at a time. */
export class Recovery {
  private st: RecoveryStatus = idle();
  private current: Promise<RecoveryStatus> | undefined;
  private queue: string[] = [];
  private queued = new Set<string>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly folder: RecoverableFolder,
    private readonly log: Logger,
    private readonly o: { logEveryMs: number },
  ) {}

  /** A copy of the current or last run's status, with rate and duration as of now. */
  status(): RecoveryStatus {
    const s = { ...this.st, errorMessages: [...this.st.errorMessages] };
    if (this.current) {
      s.durationMs = Date.now() - s.startedUnixMs;
      s.bytesPerSecond = s.durationMs > 0 ? Math.round((s.bytes * 1000) / s.durationMs) : 0;
      if (s.phase === 'syncing') s.files = this.folder.fileCount();
    }
    return s;
  }

  /** True while a run is going. */
  get running(): boolean {
    return this.current !== undefined;
  }

  /** Starts a run, or joins the one going. */
  start(trigger: RecoveryTrigger): RecoveryHandle {
    if (this.current) return { status: this.status(), joined: true, done: this.current };
    const peers = this.folder.connectedPeers();
    this.st = { ...idle(), phase: 'syncing', run: this.st.run + 1, trigger, startedUnixMs: Date.now(), peersTotal: peers.length };
    this.queue = [...peers];
    this.queued = new Set(peers);
    const done = this.run().finally(() => (this.current = undefined));
    this.current = done;
    return { status: this.status(), joined: false, done };
  }

  /**
   * A peer connected while a run is going: true if the run covers it (already queued, or queued now
   * because the run is still syncing); false if the caller should sync with it separately.
   */
  addPeer(peerId: string): boolean {
    if (!this.current) return false;
    if (this.queued.has(peerId)) return true;
    if (this.st.phase !== 'syncing') return false;
    this.queued.add(peerId);
    this.queue.push(peerId);
    this.st.peersTotal++;
    return true;
  }

  /** Stops a run at shutdown. */
  stop(): void {
    this.stopping.abort(new CancelledError('node stopping'));
  }

  private error(msg: string): void {
    this.st.errors++;
    this.st.errorMessages.push(msg);
    if (this.st.errorMessages.length > 10) this.st.errorMessages.shift();
  }

  private async run(): Promise<RecoveryStatus> {
    const st = this.st;
    const signal = this.stopping.signal;
    const onFetch: FetchProgress = (kind: ObjectKind, bytes: number) => {
      if (kind === 'chunk') st.chunks++;
      else if (kind === 'manifest') st.manifests++;
      st.bytes += bytes;
    };
    const progress = setInterval(() => {
      const s = this.status();
      this.log.info(
        { phase: s.phase, peersDone: s.peersDone, peersTotal: s.peersTotal, chunks: s.chunks, manifests: s.manifests, bytes: s.bytes, bytesPerSecond: s.bytesPerSecond, files: s.files, chunksChecked: s.chunksChecked, errors: s.errors },
        'recovery progress',
      );
    }, this.o.logEveryMs);
    progress.unref();
    this.log.info({ run: st.run, trigger: st.trigger, peers: st.peersTotal }, 'recovery started');
    try {
      if (this.queue.length === 0) this.error('no peer is connected to recover from');
      while (this.queue.length) {
        const peer = this.queue.shift()!;
        try {
          const r = await this.folder.syncFrom(peer, signal, onFetch);
          st.peersOk++;
          if (r.peerLacks) this.log.info({ peer, objects: r.peerLacks }, 'peer lacks objects of this folder');
        } catch (err) {
          if (signal.aborted) throw err;
          this.error(`sync with ${peer} failed: ${(err as Error).message}`);
          this.log.warn({ peer, err: (err as Error).message }, 'sync with peer failed during recovery');
        }
        st.peersDone++;
      }
      if (st.peersOk > 0) {
        st.phase = 'indexing';
        await this.folder.loadIndex(signal, (id, err) => this.error(`manifest ${id} skipped: ${err.message}`));
        st.files = this.folder.fileCount();
        st.phase = 'verifying';
        const c = await this.folder.checkLiveChunks(
          signal,
          (p) => {
            st.chunksChecked = p.checked;
            st.chunksMissing = p.missing;
          },
          onFetch,
        );
        st.chunksChecked = c.checked;
        st.chunksMissing = c.missing;
        if (c.missing) this.error(`${c.missing} chunks of live files are missing and no peer has them`);
      } else if (st.peersTotal > 0) {
        this.error('no peer answered the recovery');
      }
      st.phase = st.peersOk > 0 && st.chunksMissing === 0 ? 'done' : 'failed';
    } catch (err) {
      st.phase = 'failed';
      this.error((err as Error).message);
    } finally {
      clearInterval(progress);
    }
    st.finishedUnixMs = Date.now();
    st.durationMs = st.finishedUnixMs - st.startedUnixMs;
    st.bytesPerSecond = st.durationMs > 0 ? Math.round((st.bytes * 1000) / st.durationMs) : 0;
    const line = {
      run: st.run,
      trigger: st.trigger,
      phase: st.phase,
      peers: st.peersOk,
      peersTotal: st.peersTotal,
      chunks: st.chunks,
      manifests: st.manifests,
      bytes: st.bytes,
      files: st.files,
      chunksChecked: st.chunksChecked,
      chunksMissing: st.chunksMissing,
      errors: st.errors,
      ms: st.durationMs,
      mbPerSecond: Number((st.bytesPerSecond / 1e6).toFixed(1)),
    };
    if (st.phase === 'done') this.log.info(line, 'recovery finished');
    else this.log.warn({ ...line, lastError: st.errorMessages.at(-1) }, 'recovery failed');
    return { ...st, errorMessages: [...st.errorMessages] };
  }
}

/**
 * When the folder syncs with its peers besides recoveries: on every (re)connect of a peer, every
 * `intervalMs`, and on demand. Syncs run one after another (an object restored from one peer is not
 * fetched again from the next); a peer connecting while a recovery syncs joins that recovery.
 */
export class AntiEntropy {
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();
  /** Set at start on an empty folder: the first peer to connect starts a recovery (trigger "startup"). */
  recoverOnFirstPeer = false;

  constructor(
    private readonly folder: RecoverableFolder & { recovery: Recovery },
    private readonly log: Logger,
    private readonly o: { intervalMs: number },
  ) {}

  /** Starts the periodic rounds. */
  start(): void {
    if (this.o.intervalMs > 0) {
      this.timer = setInterval(() => void this.syncAll('periodic'), this.o.intervalMs);
      this.timer.unref();
    }
  }

  /** A peer (re)connected. */
  peerConnected(peerId: string): void {
    if (this.recoverOnFirstPeer) {
      this.recoverOnFirstPeer = false;
      this.folder.recovery.start('startup');
      return;
    }
    if (this.folder.recovery.addPeer(peerId)) return;
    void this.enqueue(peerId, 'connect');
  }

  /** One round with every connected peer; resolves when done. */
  syncAll(reason: string): Promise<void> {
    if (this.folder.recovery.running) return Promise.resolve();
    return Promise.all(this.folder.connectedPeers().map((p) => this.enqueue(p, reason))).then(() => undefined);
  }

  private enqueue(peerId: string, reason: string): Promise<void> {
    const next = this.chain.then(async () => {
      if (this.stopping.signal.aborted) return;
      const started = Date.now();
      try {
        const r = await this.folder.syncFrom(peerId, this.stopping.signal);
        const line = { peer: peerId, reason, offered: r.offered, buckets: r.coveredBuckets, objects: r.fetched, bytes: r.bytes, manifests: r.manifests, peerLacks: r.peerLacks, ms: Date.now() - started };
        if (r.fetched > 0 || r.peerLacks > 0) this.log.info(line, 'folder synced with peer');
        else this.log.debug(line, 'folder in sync with peer');
      } catch (err) {
        if (!this.stopping.signal.aborted) this.log.warn({ peer: peerId, reason, err: (err as Error).message }, 'folder sync failed');
      }
    });
    this.chain = next;
    return next;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort(new CancelledError('node stopping'));
    this.folder.recovery.stop();
  }
}
