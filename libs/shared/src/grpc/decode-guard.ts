/**
 * Requests that do not decode are a client mistake: INVALID_ARGUMENT, not INTERNAL.
 *
 * grpc-js answers a request whose bytes its deserializer rejects with INTERNAL "Error deserializing
 * request" before any handler runs (grpc-js 1.14.7, server-interceptors.js), which reads as a server
 * fault (the fuzz test of issue #8 found it on every service). `withDecodeGuard` wraps each method's
 * deserializer so a failure yields an `Undecodable` value instead of throwing; the handler adapters
 * (handlers.ts, for unary and server-streaming requests) and `messages()` (streams.ts, for every streamed
 * request message) turn it into InvalidArgumentError, which maps to INVALID_ARGUMENT in the one place
 * errors map to statuses. Nothing of an undecodable request reaches project code.
 */
import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from '../errors';

/** Stands in for a request message that did not decode. */
export class Undecodable {
  constructor(readonly reason: string) {}
}

/** The message, or InvalidArgumentError when it did not decode. */
export function decoded<T>(msg: T | Undecodable): T {
  if (msg instanceof Undecodable) throw new InvalidArgumentError(`request message does not decode: ${msg.reason}`);
  return msg;
}

const guarded = new WeakMap<object, grpc.ServiceDefinition>();

/** The service definition with every request deserializer guarded (see above); memoized per definition. */
export function withDecodeGuard<D extends grpc.ServiceDefinition>(def: D): D {
  const hit = guarded.get(def);
  if (hit) return hit as D;
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def as grpc.ServiceDefinition)) {
    const decode = m.requestDeserialize;
    out[name] = {
      ...m,
      requestDeserialize: (b: Buffer) => {
        try {
          return decode(b);
        } catch (err) {
          return new Undecodable((err as Error).message);
        }
      },
    };
  }
  guarded.set(def, out as grpc.ServiceDefinition);
  return out as D;
}
