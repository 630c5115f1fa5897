/**
 * Stream helpers that keep backpressure honest: a write waits for `drain` when the transport says its
 * buffer is full, and gives up when the stream closes or the signal aborts.
 */
import type { Writable } from 'node:stream';
import { CancelledError } from '../errors';

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
