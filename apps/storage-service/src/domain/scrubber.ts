/**
 * The scrubber: a background pass that re-reads and re-hashes every indexed object at a bounded rate,
 * quarantines corrupt ones, drops missing ones from the index, and keeps the problems it found so the node
 * can repair them from a peer (GetScrubStatus). Framework-free.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { IndexedObject, VerifyOutcome } from './disk-object-store';
import type { ObjectKind } from './object-store';

/** What the scrubber walks: the disk store's index and its verify. */
export interface ScrubTarget {
  indexed(signal?: AbortSignal): AsyncIterable<IndexedObject>;
  verify(folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<VerifyOutcome>;
}

/** Options of a Scrubber. */
export interface ScrubberOptions {
  /** Most bytes re-read per second; 0 disables the scrubber. */
  bytesPerSecond: number;
  /** Pause between the end of one pass and the start of the next, in ms. */
  intervalMs: number;
  /** How often a running pass logs its progress, in ms (default 60,000). */
  progressLogMs?: number;
  /** Most problems kept (the oldest are dropped first); default 1,000. */
  maxProblems?: number;
}

/** One corrupt or missing object found by a pass. */
export interface ScrubProblem {
  folder: string;
  kind: ObjectKind;
  id: string;
  problem: 'corrupt' | 'missing';
  /** When it was found (ms since the epoch). */
  foundAtMs: number;
}

/** Counters of one pass. */
export interface ScrubPass {
  startedAtMs: number;
  /** 0 while the pass runs. */
  finishedAtMs: number;
  objectsChecked: number;
  bytesChecked: number;
  corrupt: number;
  missing: number;
}

/** What GetScrubStatus reports. */
export interface ScrubStatus {
  enabled: boolean;
  bytesPerSecond: number;
  passesCompleted: number;
  /** The pass in progress, if any. */
  current?: ScrubPass;
  /** The last finished pass, if any. */
  last?: ScrubPass;
  /** Problems found, oldest first (bounded). */
  problems: ScrubProblem[];
}

/** Runs scrub passes one after another until stopped. */
export class Scrubber {
  private readonly ctrl = new AbortController();
  private loop?: Promise<void>;
  private passesCompleted = 0;
  private current?: ScrubPass;
  private last?: ScrubPass;
  private readonly problems: ScrubProblem[] = [];
  private readonly maxProblems: number;

  constructor(
    private readonly components: { target: ScrubTarget; log?: Logger },
    private readonly options: ScrubberOptions,
  ) {
    this.maxProblems = options.maxProblems ?? 1000;
  }

  /** Starts the background loop (nothing when disabled). */
  start(): void {
    if (this.options.bytesPerSecond <= 0 || this.loop) return;
    this.loop = this.run().catch((err: unknown) => {
      if (!this.ctrl.signal.aborted) this.components.log?.error({ err }, 'scrubber stopped');
    });
  }

  /** Stops the loop and waits for it. */
  async stop(): Promise<void> {
    this.ctrl.abort();
    await this.loop;
  }

  status(): ScrubStatus {
    return {
      enabled: this.options.bytesPerSecond > 0,
      bytesPerSecond: this.options.bytesPerSecond,
      passesCompleted: this.passesCompleted,
      current: this.current && { ...this.current },
      last: this.last && { ...this.last },
      problems: this.problems.map((p) => ({ ...p })),
    };
  }

  /** Runs one whole pass now at the configured rate (also used by tests); resolves with its counters. */
  async runPass(signal: AbortSignal = this.ctrl.signal): Promise<ScrubPass> {
    const { target, log } = this.components;
    const rate = this.options.bytesPerSecond > 0 ? this.options.bytesPerSecond : Infinity;
    const progressMs = this.options.progressLogMs ?? 60_000;
    const pass: ScrubPass = { startedAtMs: Date.now(), finishedAtMs: 0, objectsChecked: 0, bytesChecked: 0, corrupt: 0, missing: 0 };
    this.current = pass;
    const t0 = performance.now();
    let lastLog = t0;
    log?.info({ bytesPerSecond: this.options.bytesPerSecond }, 'scrub pass started');
    try {
      for await (const o of target.indexed(signal)) {
        const outcome = await target.verify(o.folder, o.kind, o.id, signal);
        pass.objectsChecked++;
        pass.bytesChecked += o.size;
        if (outcome !== 'ok') {
          if (outcome === 'corrupt') pass.corrupt++;
          else pass.missing++;
          this.problems.push({ folder: o.folder, kind: o.kind, id: o.id, problem: outcome, foundAtMs: Date.now() });
          if (this.problems.length > this.maxProblems) this.problems.splice(0, this.problems.length - this.maxProblems);
          log?.warn({ folder: o.folder, kind: o.kind, chunk: o.id, problem: outcome }, 'scrub found a bad object');
        }
        // Bounded rate: never ahead of bytesPerSecond since the pass started.
        const aheadMs = (pass.bytesChecked / rate) * 1000 - (performance.now() - t0);
        if (aheadMs > 1) await sleep(aheadMs, undefined, { signal });
        if (performance.now() - lastLog >= progressMs) {
          lastLog = performance.now();
          log?.info({ ...pass }, 'scrub progress');
        }
      }
    } finally {
      if (this.current === pass) this.current = undefined;
    }
    pass.finishedAtMs = Date.now();
    this.last = pass;
    this.passesCompleted++;
    log?.info({ ...pass, ms: Math.round(performance.now() - t0) }, 'scrub pass finished');
    return pass;
  }

  private async run(): Promise<void> {
    const signal = this.ctrl.signal;
    while (!signal.aborted) {
      await this.runPass(signal);
      await sleep(this.options.intervalMs, undefined, { signal });
    }
  }
}
