/**
 * Adapters from plain async functions to grpc-js handlers. They give every call one AbortSignal
 * (cancellation and deadline), turn any thrown value into a status in one place, and guarantee exactly
 * one terminal event per call.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { decoded } from './decode-guard';
import { toStatus } from './status';

/** An AbortSignal that fires when the call is cancelled or its deadline passes. */
export function callSignal(call: { on(event: 'cancelled', fn: () => void): unknown; getDeadline(): grpc.Deadline }): {
  signal: AbortSignal;
  dispose(): void;
} {
  const ctrl = new AbortController();
  const onCancel = () => ctrl.abort(new Error('cancelled by caller'));
  call.on('cancelled', onCancel);
  let timer: NodeJS.Timeout | undefined;
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(at) && at > 0) {
    timer = setTimeout(() => ctrl.abort(new Error('deadline exceeded')), Math.max(0, at - Date.now()));
    timer.unref();
  }
  return { signal: ctrl.signal, dispose: () => timer && clearTimeout(timer) };
}

/** Runs `work` with the call's signal and answers through `callback` (unary and client-streaming calls). */
function answer<Res>(call: Parameters<typeof callSignal>[0], callback: grpc.sendUnaryData<Res>, log: Logger, rpc: string, work: (signal: AbortSignal) => Promise<Res>): void {
  const { signal, dispose } = callSignal(call);
  // Through a promise, so a synchronous throw (an undecodable request) becomes a status like any other.
  Promise.resolve()
    .then(() => work(signal))
    .then(
      (res) => {
        dispose();
        callback(null, res);
      },
      (err) => {
        dispose();
        callback(toStatus(err, log, rpc) as grpc.ServiceError);
      },
    );
}

/** Runs `work` with the call's signal, then ends the call or emits its status (server-streaming and bidi calls). */
function finish(call: Parameters<typeof callSignal>[0] & { cancelled: boolean; end(): void; emit(event: 'error', err: unknown): boolean }, log: Logger, rpc: string, work: (signal: AbortSignal) => Promise<void>): void {
  const { signal, dispose } = callSignal(call);
  Promise.resolve()
    .then(() => work(signal))
    .then(
      () => {
        dispose();
        call.end();
      },
      (err) => {
        dispose();
        if (!call.cancelled) call.emit('error', toStatus(err, log, rpc));
      },
    );
}

/** Wraps `fn(request, signal)` as a unary handler. */
export function unary<Req, Res>(log: Logger, rpc: string, fn: (req: Req, signal: AbortSignal, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => answer(call, callback, log, rpc, (signal) => fn(decoded(call.request), signal, call));
}

/** Wraps `fn(call, signal)` as a server-streaming handler; `fn` writes, the adapter ends the call. */
export function serverStream<Req, Res>(log: Logger, rpc: string, fn: (call: grpc.ServerWritableStream<Req, Res>, signal: AbortSignal) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
  return (call) =>
    finish(call, log, rpc, (signal) => {
      decoded(call.request);
      return fn(call, signal);
    });
}

/** Wraps `fn(call, signal)` as a client-streaming handler. */
export function clientStream<Req, Res>(log: Logger, rpc: string, fn: (call: grpc.ServerReadableStream<Req, Res>, signal: AbortSignal) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => answer(call, callback, log, rpc, (signal) => fn(call, signal));
}

/** Wraps `fn(call, signal)` as a bidirectional handler; `fn` reads and writes, the adapter ends the call. */
export function bidi<Req, Res>(log: Logger, rpc: string, fn: (call: grpc.ServerDuplexStream<Req, Res>, signal: AbortSignal) => Promise<void>): grpc.handleBidiStreamingCall<Req, Res> {
  return (call) => finish(call, log, rpc, (signal) => fn(call, signal));
}
