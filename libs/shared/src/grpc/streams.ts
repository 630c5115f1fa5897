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
