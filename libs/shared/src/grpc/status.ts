/**
 * The one place where errors cross the gRPC boundary, both ways.
 * Servers: any thrown value becomes a status (a non-VaultError becomes INTERNAL with a generic
 * message; its cause is logged, never sent). Clients: a status becomes the matching domain error.
 */
import { Metadata, status as Status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  AbortedError,
  CancelledError,
  DataLossError,
  DeadlineExceededError,
  ERROR_TABLE,
  type ErrorCode,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  VaultError,
} from '../errors';

/** Turns any thrown value into a gRPC status, logging bugs with their cause. */
export function toStatus(err: unknown, log?: Logger, rpc?: string): Partial<StatusObject> & { code: number; details: string } {
  if (err instanceof VaultError) {
    return { code: ERROR_TABLE[err.code].grpc, details: err.message, metadata: new Metadata() };
  }
  log?.error({ err, rpc }, 'internal error');
  return { code: Status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}

/** The ItemError answering one failed item of a multiplexed stream (its status, as a unary call would end). */
export function itemErrorOf(err: unknown, log?: Logger, rpc?: string): { code: number; message: string } {
  const st = toStatus(err, log, rpc);
  return { code: st.code, message: st.details };
}

const BY_GRPC: Record<number, ErrorCode> = Object.fromEntries(
  Object.entries(ERROR_TABLE).map(([code, v]) => [v.grpc, code as ErrorCode]),
);

/** Turns a status received from a server into the matching domain error. */
export function fromStatus(err: unknown, what = 'call'): VaultError {
  if (err instanceof VaultError) return err;
  const e = err as Partial<ServiceError>;
  if (typeof e?.code !== 'number') {
    return new VaultError('internal', `${what} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  const details = e.details || e.message || 'no details';
  const code = BY_GRPC[e.code] ?? 'internal';
  const options = { cause: err };
  switch (code) {
    case 'invalid_argument': return new InvalidArgumentError(details, options);
    case 'not_found': return new NotFoundError(details, options);
    case 'unauthenticated': return new UnauthenticatedError(details, options);
    case 'permission_denied': return new PermissionDeniedError(details, options);
    case 'resource_exhausted': return new ResourceExhaustedError(details, options);
    case 'failed_precondition': return new FailedPreconditionError(details, options);
    case 'aborted': return new AbortedError(details, options);
    case 'data_loss': return new DataLossError(details, options);
    case 'unavailable': return new UnavailableError(`${what}: ${details}`, options);
    case 'deadline_exceeded': return new DeadlineExceededError(`${what}: ${details}`, options);
    case 'cancelled': return new CancelledError(`${what}: ${details}`, options);
    default: return new VaultError(code, `${what}: ${details}`, options);
  }
}
