/**
 * Stream helpers that keep backpressure honest: a write waits for `drain` when the transport says its
 * buffer is full, and gives up when the stream closes or the signal aborts.
 */
import type { Writable } from 'node:stream';
import { CancelledError } from '../errors';
import { decoded, type Undecodable } from './decode-guard';

/** Writes one message and waits for `drain` if the stream's buffer is full. */
export async function writeMessage<T>(stream: Writable & { write(msg: T): boolean }, msg: T, signal?: AbortSignal): Promise<void> {
  if (stream.write(msg)) return;
  await new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new CancelledError('stream closed while writing'));
    };
    const onAbort = () => {
      cleanup();
      reject(new CancelledError('cancelled while writing'));
    };
    stream.on('drain', onDrain);
    stream.on('close', onClose);
    stream.on('error', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The messages of a server-side stream call, for `for await`. Unlike iterating the call directly, this
 * does not destroy the call when the reading ends: a bidirectional handler must still be able to write
 * and end with a status after the client half-closes (Node's default iterator destroys the duplex).
 */
export async function* messages<T>(call: NodeJS.ReadableStream & { iterator?: (o: { destroyOnReturn: boolean }) => AsyncIterableIterator<unknown> }): AsyncIterableIterator<T> {
  const r = call as unknown as import('node:stream').Readable;
  // A message that did not decode ends the reading with InvalidArgumentError (decode-guard.ts).
  for await (const msg of r.iterator({ destroyOnReturn: false }) as AsyncIterable<T | Undecodable>) yield decoded(msg);
}

/**
 * Serves a bidi stream of independent items (CryptoService.Chunks, StorageService.Objects): each request
 * is handed to `item`, whose answer is written as soon as it is ready. Up to `concurrency` items are
 * worked on at once (answers may then come in another order than the requests; with 1 they keep it);
 * no further request is read while that many are outstanding, and an answer's write waits for the caller
 * to read, so a caller that floods the stream or stops reading makes the server buffer no more than
 * `concurrency` items. `item` turns an item's failure into an answer itself; an error it throws (or a
 * request that does not decode) ends the call with that status once the items already started are answered.
 */
export async function serveItems<Req, Res>(
  call: NodeJS.ReadableStream & Writable & { write(msg: Res): boolean },
  signal: AbortSignal,
  concurrency: number,
  item: (req: Req, signal: AbortSignal) => Promise<Res>,
): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  // Wakes the reader when an item fails while it waits for the next request (which may never come). A
  // fresh promise per wait: racing each read against one long-lived promise would keep every request.
  let wake: (() => void) | undefined;
  const requests = messages<Req>(call);
  try {
    for (;;) {
      const next = await new Promise<IteratorResult<Req> | 'failed'>((resolve, reject) => {
        wake = () => resolve('failed');
        requests.next().then(resolve, reject);
      });
      wake = undefined;
      if (next === 'failed' || next.done) break;
      const p: Promise<void> = item(next.value, signal)
        .then((res) => writeMessage(call, res, signal))
        .catch((err: unknown) => {
          failure ??= { err };
          wake?.();
        })
        .finally(() => running.delete(p));
      running.add(p);
      if (running.size >= concurrency) await Promise.race(running);
      if (failure) break;
    }
  } finally {
    await Promise.all(running);
  }
  if (failure) throw failure.err;
}
