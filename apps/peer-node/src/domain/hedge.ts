/**
 * Hedged reads of one object from the peers holding it: ask the first holder; if it has not answered
 * within `hedgeMs`, ask the next as well (and so on); a holder that fails, lacks the object or answers
 * with bytes that do not match the ID makes the next one start at once. The first answer that verifies
 * wins and every other request is cancelled. Bytes that do not verify are logged and dropped: never
 * returned, never stored. Pure: the fetch and the verification come from the caller.
 */
import { rank } from './placement';
import type { Logger } from 'pino';
import { CancelledError, DataLossError, NotFoundError, UnavailableError } from '@distri-vault/shared';

/** What a hedged read needs. */
export interface HedgeOptions {
  /** Holders to ask, best first (see holderOrder). */
  holders: string[];
  /** Fetches from one holder; null if it does not have the object. Must stop when `signal` aborts. */
  fetch(holder: string, signal: AbortSignal): Promise<Buffer | null>;
  /** True if the bytes are the object asked for (hash of the bytes equals the ID). */
  verify(data: Buffer): boolean;
  /** How long one holder may take before the next is asked as well. */
  hedgeMs: number;
  signal?: AbortSignal;
  log?: Logger;
  /** For log lines. */
  what?: string;
}

/** The winning answer. */
export interface HedgeResult {
  data: Buffer;
  holder: string;
  /** Holders asked (started) in all. */
  asked: number;
}

/**
 * The order in which holders are asked for an object of `owner`'s folder: the connected peers in the
 * object's placement ranking (HRW, see placement.ts), so the peers that should hold it are asked first.
 */
export function holderOrder(connected: string[], id: string, owner: string): string[] {
  return rank(id, owner, connected, false);
}

/** Runs a hedged read; throws NotFound/DataLoss/Unavailable when no holder gives verified bytes. */
export function hedgedFetch(o: HedgeOptions): Promise<HedgeResult> {
  const { holders, log } = o;
  if (holders.length === 0) return Promise.reject(new UnavailableError(`no holder to ask for ${o.what ?? 'the object'}`));
  if (o.signal?.aborted) return Promise.reject(new CancelledError('read cancelled'));
  return new Promise<HedgeResult>((resolve, reject) => {
    const attempts: AbortController[] = [];
    let next = 0;
    let pending = 0;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const outcomes = { missing: 0, bad: 0, failed: 0 };
    let lastErr: unknown;

    const finish = (err: unknown, result?: HedgeResult) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      for (const a of attempts) a.abort(new CancelledError('another holder answered'));
      if (result) resolve(result);
      else reject(err);
    };
    const onAbort = () => finish(new CancelledError('read cancelled'));
    o.signal?.addEventListener('abort', onAbort, { once: true });

    const settleIfExhausted = () => {
      if (done || pending > 0 || next < holders.length) return;
      const what = o.what ?? 'the object';
      if (outcomes.bad > 0) finish(new DataLossError(`no holder of ${holders.length} had a good copy of ${what} (${outcomes.bad} sent bytes that do not match)`, { cause: lastErr }));
      else if (outcomes.failed > 0) finish(new UnavailableError(`no holder of ${holders.length} answered for ${what}`, { cause: lastErr }));
      else finish(new NotFoundError(`no holder of ${holders.length} has ${what}`));
    };

    const start = () => {
      if (done || next >= holders.length) return;
      const holder = holders[next++]!;
      const ctrl = new AbortController();
      attempts.push(ctrl);
      pending++;
      if (timer) clearTimeout(timer);
      if (next < holders.length) {
        timer = setTimeout(() => {
          log?.debug({ peer: holder, what: o.what, ms: o.hedgeMs }, 'holder slow; asking the next as well');
          start();
        }, o.hedgeMs);
        timer.unref?.();
      }
      o.fetch(holder, ctrl.signal).then(
        (data) => {
          pending--;
          if (done) return;
          if (data === null) {
            outcomes.missing++;
          } else if (!o.verify(data)) {
            outcomes.bad++;
            log?.warn({ peer: holder, what: o.what, bytes: data.length }, 'holder sent bytes that do not match the ID; skipped');
          } else {
            attempts.splice(attempts.indexOf(ctrl), 1); // finished; only the others are cancelled
            finish(undefined, { data, holder, asked: next });
            return;
          }
          start();
          settleIfExhausted();
        },
        (err: unknown) => {
          pending--;
          if (done) return;
          outcomes.failed++;
          lastErr = err;
          log?.debug({ peer: holder, what: o.what, err: (err as Error).message }, 'holder failed');
          start();
          settleIfExhausted();
        },
      );
    };
    start();
  });
}
