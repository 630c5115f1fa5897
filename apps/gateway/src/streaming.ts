/**
 * HTTP <-> gRPC streaming, free of Nest and grpc-js: request bodies become bounded frames written with
 * backpressure, and download frames are written to the HTTP response with backpressure and a byte
 * count checked against the announced size. Typed structurally so the functions can be tested alone.
 */
import type { Readable, Writable } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { CancelledError, DataLossError, writeMessage } from '@distri-vault/shared';
import type { FileInfo, UploadFileRequest, UploadHeader } from '@distri-vault/shared/generated/vault/node/v1/node';

/** Largest data frame sent to the node in one UploadFile message. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** An AbortSignal that fires when the HTTP exchange closes before the response was fully sent. */
export function closedSignal(res: Pick<ServerResponse, 'once' | 'writableFinished'>): AbortSignal {
  const ctrl = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ctrl.abort(new CancelledError('client went away'));
  });
  return ctrl.signal;
}

/**
 * Pulls the chunks of a readable stream. Unlike `for await`, stopping on `signal` leaves the stream
 * alive, so the caller can still answer the HTTP request with an error; the rest is discarded by Node.
 * Throws CancelledError when the stream errors or closes before its end (a client that aborted).
 */
export async function* readChunks(stream: Readable, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for (;;) {
    if (signal?.aborted) throw new CancelledError('cancelled while reading the request body');
    const chunk: Buffer | string | null = stream.read();
    if (chunk !== null) {
      yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      continue;
    }
    if (stream.readableEnded) return;
    if (stream.errored || stream.destroyed) throw new CancelledError('request body aborted', { cause: stream.errored });
    await new Promise<void>((resolve, reject) => {
      const done = (err?: unknown) => {
        stream.off('readable', onReadable);
        stream.off('end', onReadable);
        stream.off('error', onError);
        stream.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onReadable = () => done();
      const onError = (err: unknown) => done(new CancelledError('request body aborted', { cause: err }));
      const onClose = () => (stream.readableEnded ? done() : done(new CancelledError('request body aborted')));
      const onAbort = () => done(new CancelledError('cancelled while reading the request body'));
      stream.on('readable', onReadable);
      stream.on('end', onReadable);
      stream.on('error', onError);
      stream.on('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** Most of a refused upload's body read and discarded before the error is answered (see `discardBody`). */
export const DISCARD_MAX_BYTES = 64 * 1024 * 1024;
/** Longest wait for the end of a refused upload's body before the error is answered anyway. */
export const DISCARD_MAX_MS = 10_000;

/**
 * Reads and discards what is left of a request body, so that an error answered before the body was read
 * (the node refused the upload at once) reaches a client that is still sending. Answered first, the
 * response ends the exchange and Node closes the connection with the body's bytes unread, which resets
 * it: the client sees EPIPE or ECONNRESET instead of the status (and a keep-alive client would stall on
 * the unread body). Stops after `maxBytes` or `timeoutMs`; resolves true when the body ended within them.
 */
export function discardBody(stream: Readable, maxBytes = DISCARD_MAX_BYTES, timeoutMs = DISCARD_MAX_MS): Promise<boolean> {
  if (stream.readableEnded) return Promise.resolve(true);
  if (stream.destroyed || stream.errored) return Promise.resolve(false);
  return new Promise((resolve) => {
    let discarded = 0;
    const done = (ended: boolean) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onClose);
      stream.off('error', onError);
      if (!ended) stream.pause();
      resolve(ended);
    };
    const onData = (b: Buffer) => {
      discarded += b.length;
      if (discarded > maxBytes) done(false);
    };
    const onEnd = () => done(true);
    const onClose = () => done(stream.readableEnded);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onClose);
    stream.once('error', onError);
    stream.resume();
  });
}

/**
 * Coalesces arbitrary pieces into frames of exactly `maxFrame` bytes, the last one shorter (no frame
 * when the source is empty). At most one frame is held at a time.
 */
export async function* coalesce(source: AsyncIterable<Uint8Array>, maxFrame = MAX_FRAME_BYTES): AsyncGenerator<Buffer> {
  let frame = Buffer.allocUnsafe(maxFrame);
  let filled = 0;
  for await (const piece of source) {
    let offset = 0;
    while (offset < piece.length) {
      const n = Math.min(maxFrame - filled, piece.length - offset);
      frame.set(piece.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === maxFrame) {
        yield frame;
        // A fresh buffer per frame: the transport may still hold the previous one.
        frame = Buffer.allocUnsafe(maxFrame);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield frame.subarray(0, filled);
}

/** The writable side of an UploadFile call, as far as pumpUpload needs it. */
export type UploadSink = Writable & { write(msg: UploadFileRequest): boolean };

/**
 * Writes the header, then the body as data frames of at most `maxFrame` bytes, waiting for 'drain'
 * whenever the call's buffer is full, then `finish` (the byte count) and a half-close. Returns the number of body bytes sent.
 * Does not cancel the call on failure: the caller owns it.
 */
export async function pumpUpload(sink: UploadSink, header: UploadHeader, body: AsyncIterable<Uint8Array>, signal: AbortSignal, maxFrame = MAX_FRAME_BYTES): Promise<number> {
  let bytes = 0;
  await writeMessage(sink, { step: { $case: 'header', value: header } }, signal);
  for await (const frame of coalesce(body, maxFrame)) {
    if (signal.aborted) throw new CancelledError('upload cancelled');
    bytes += frame.length;
    await writeMessage(sink, { step: { $case: 'data', value: frame } }, signal);
  }
  // The explicit end: without it the node stores nothing (a cut stream is not a short file).
  await writeMessage(sink, { step: { $case: 'finish', value: { bytes } } }, signal);
  sink.end();
  return bytes;
}

/** What the download response needs from the HTTP response object. */
export type DownloadTarget = Writable & Pick<ServerResponse, 'statusCode' | 'setHeader' | 'headersSent'>;

/**
 * Sets the status and headers of a download response from the version's header: 200 with the whole
 * file, or 206 with Content-Range when `range` is given. Returns the number of body bytes to send.
 */
export function writeDownloadHead(res: DownloadTarget, info: FileInfo, range?: { start: number; end: number }): number {
  const length = range ? range.end - range.start + 1 : info.size;
  res.statusCode = range ? 206 : 200;
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', String(length));
  if (range) res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', `"${info.sha256}"`);
  res.setHeader('X-Vault-Version', String(info.version));
  res.setHeader('Last-Modified', new Date(info.updatedUnixMs).toUTCString());
  return length;
}

/**
 * Writes the frames of one version to `res` (whose head is already set), pausing the source while
 * `res` is full. Ends the response only when exactly `expected` (default `info.size`) bytes went out; any failure destroys
 * it instead, so a client never mistakes a truncated body for a complete one. Returns the bytes sent.
 */
export async function pipeDownload(info: FileInfo, frames: AsyncIterable<Buffer>, res: DownloadTarget, signal: AbortSignal, expected = info.size): Promise<number> {
  let sent = 0;
  try {
    for await (const frame of frames) {
      if (signal.aborted) throw new CancelledError('download cancelled');
      if (sent + frame.length > expected) throw new DataLossError(`node sent more than the ${expected} bytes it announced`);
      sent += frame.length;
      await writeMessage(res, frame, signal);
    }
    if (sent !== expected) throw new DataLossError(`node sent ${sent} of the ${expected} bytes it announced`);
    res.end();
    return sent;
  } catch (err) {
    res.destroy();
    throw err;
  }
}
