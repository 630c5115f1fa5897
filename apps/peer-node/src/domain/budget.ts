/**
 * A node-wide budget of chunk bytes in flight, shared by every upload and download of the node.
 *
 * Each transfer has its own window (`NODE_WINDOW` chunks), but windows add up: with 32 clients a home
 * node's peer-node held ~200 MiB of live chunk buffers (heap snapshot under the load test: seal requests
 * and storage puts queued in grpc-js calls, chunks cut and waiting, read-ahead) and peaked at 450-550 MiB
 * RSS. An upload takes its chunk's bytes from this budget before it starts working on the chunk and gives
 * them back when the chunk is stored; when the budget is spent, the next chunk waits (the upload stops
 * reading the client's stream, so backpressure reaches the client). A download reads ahead only with bytes
 * it can take at once (`tryTake`) and gives them back when the chunk is opened, so a reader that stalls
 * never holds budget others wait for. Waiters are served in arrival order, so one busy transfer cannot
 * starve another, and a request larger than the whole budget is clamped to it (it then runs alone rather
 * than never).
 */
import { CancelledError } from '@distri-vault/shared';

export class ByteBudget {
  private used = 0;
  private readonly waiters: { n: number; grant: () => void }[] = [];

  /** `limit` bytes in all; 0 means no limit. */
  constructor(readonly limit: number) {}

  /** Bytes taken now. */
  get inUse(): number {
    return this.used;
  }

  /** Transfers waiting for bytes now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Takes `bytes`, waiting in line while the budget is spent; resolves to the function that gives them
   * back (safe to call twice). Rejects with CancelledError when `signal` aborts first (nothing taken).
   */
  async take(bytes: number, signal?: AbortSignal): Promise<() => void> {
    if (this.limit > 0 && signal?.aborted) throw new CancelledError('cancelled while waiting for memory budget');
    const now = this.tryTake(bytes);
    if (now) return now;
    const n = this.clamp(bytes);
    await new Promise<void>((resolve, reject) => {
      const w = {
        n,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        this.serve(); // a large waiter leaving may let smaller ones behind it go
        reject(new CancelledError('cancelled while waiting for memory budget'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
    return this.giver(n);
  }

  /** Takes `bytes` only if that needs no wait (nobody in line, and they fit); undefined otherwise. */
  tryTake(bytes: number): (() => void) | undefined {
    if (this.limit <= 0) return () => undefined;
    const n = this.clamp(bytes);
    if (this.waiters.length || this.used + n > this.limit) return undefined;
    this.used += n;
    return this.giver(n);
  }

  /** What a request of `bytes` counts: at most the whole budget. */
  private clamp(bytes: number): number {
    return Math.min(Math.max(0, bytes), this.limit);
  }

  private giver(n: number): () => void {
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.used -= n;
      this.serve();
    };
  }

  /** Grants waiters in order while the head fits. */
  private serve(): void {
    while (this.waiters.length && this.used + this.waiters[0]!.n <= this.limit) {
      const w = this.waiters.shift()!;
      this.used += w.n;
      w.grant();
    }
  }
}
