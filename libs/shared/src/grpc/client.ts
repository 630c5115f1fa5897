/**
 * Calling gRPC services: channels with the project's options, and promise wrappers that carry an
 * AbortSignal and turn statuses into domain errors.
 */
import * as grpc from '@grpc/grpc-js';
import { fromStatus } from './status';
import { CHANNEL_OPTIONS } from './options';
import { withBulkCodecs } from './codec';

/** A generated ts-proto client constructor. */
type ClientCtor<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => C;

const fastCtors = new WeakMap<object, ClientCtor<unknown>>();

/** The generated constructor rebuilt over the same service with the bulk codecs (see codec.ts). */
function withFastCodecs<C>(Ctor: ClientCtor<C>): ClientCtor<C> {
  const generated = Ctor as unknown as { service?: grpc.ServiceDefinition; serviceName?: string };
  if (!generated.service) return Ctor;
  let fast = fastCtors.get(Ctor);
  if (!fast) {
    const def = withBulkCodecs(generated.service);
    fast = (def === generated.service ? Ctor : grpc.makeGenericClientConstructor(def, generated.serviceName ?? '')) as ClientCtor<unknown>;
    fastCtors.set(Ctor, fast);
  }
  return fast as ClientCtor<C>;
}

/** Creates a client with the project's channel options (plus `options`) and the bulk-message codecs. */
export function createClient<C>(Ctor: ClientCtor<C>, address: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): C {
  return new (withFastCodecs(Ctor))(address, credentials, { ...CHANNEL_OPTIONS, ...options });
}

/** Options of one call. */
export interface CallOptions {
  /** Cancels the call when aborted. */
  signal?: AbortSignal;
  /** Absolute deadline, or milliseconds from now. */
  timeoutMs?: number;
  /** Wait for the channel to connect instead of failing fast while it is down. */
  waitForReady?: boolean;
}

/** grpc-js call options (the deadline) from ours. */
export function grpcCallOptions(opts: CallOptions = {}): grpc.CallOptions {
  const o: grpc.CallOptions = {};
  if (opts.timeoutMs !== undefined) o.deadline = Date.now() + opts.timeoutMs;
  return o;
}

/** Call metadata from ours: grpc-js reads wait-for-ready from the metadata's options, not the call options. */
export function callMetadata(opts: CallOptions = {}): grpc.Metadata {
  return new grpc.Metadata({ waitForReady: opts.waitForReady === true });
}

/** Ties a call's lifetime to an AbortSignal. Returns a function that unties it. */
export function bindSignal(call: { cancel(): void }, signal?: AbortSignal): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) {
    call.cancel();
    return () => undefined;
  }
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** A generated unary method: (request, metadata, options, callback) => call. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, res: Res) => void,
) => grpc.ClientUnaryCall;

/** Calls a unary method and resolves with its response; rejects with a domain error. */
export function callUnary<Req, Res>(client: grpc.Client, method: UnaryMethod<Req, Res>, request: Req, opts: CallOptions & { what?: string } = {}): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const call = method.call(client, request, callMetadata(opts), grpcCallOptions(opts), (err, res) => {
      unbind();
      if (err) reject(fromStatus(err, opts.what ?? 'call'));
      else resolve(res);
    });
    const unbind = bindSignal(call, opts.signal);
  });
}
