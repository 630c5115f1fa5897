/**
 * Domain errors: one class per condition, matched by `.name` (never by transport numbers).
 * The mapping to gRPC and HTTP statuses lives in one table, `ERROR_TABLE`, applied at the edges
 * (`grpc/status.ts` for gRPC, the gateway's exception filter for HTTP).
 */

/** Every condition a distri_vault component reports to its callers. */
export type ErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'unauthenticated'
  | 'permission_denied'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'aborted'
  | 'data_loss'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'cancelled'
  | 'internal';

/** Base class of every domain error. `message` is safe to show to a caller. */
export class VaultError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'VaultError';
  }
}

/** Malformed request, bad path or ID, oversize frame, protocol step out of order. */
export class InvalidArgumentError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid_argument', message, options);
    this.name = 'InvalidArgumentError';
  }
}

/** Unknown file, object, folder or peer. */
export class NotFoundError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('not_found', message, options);
    this.name = 'NotFoundError';
  }
}

/** Caller did not prove who it is. */
export class UnauthenticatedError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unauthenticated', message, options);
    this.name = 'UnauthenticatedError';
  }
}

/** Caller is known but not allowed to do this. */
export class PermissionDeniedError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('permission_denied', message, options);
    this.name = 'PermissionDeniedError';
  }
}

/** Disk full, quota reached, too many streams. */
export class ResourceExhaustedError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('resource_exhausted', message, options);
    this.name = 'ResourceExhaustedError';
  }
}

/** A precondition does not hold, e.g. peers speak different protocol versions. */
export class FailedPreconditionError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('failed_precondition', message, options);
    this.name = 'FailedPreconditionError';
  }
}

/** A concurrent modification got in the way. */
export class AbortedError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('aborted', message, options);
    this.name = 'AbortedError';
  }
}

/** Bytes failed verification: hash mismatch, AEAD tag failure, corrupt object. */
export class DataLossError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('data_loss', message, options);
    this.name = 'DataLossError';
  }
}

/** A needed peer or service cannot be reached. */
export class UnavailableError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
    this.name = 'UnavailableError';
  }
}

/** The caller's deadline passed. */
export class DeadlineExceededError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('deadline_exceeded', message, options);
    this.name = 'DeadlineExceededError';
  }
}

/** The caller went away. */
export class CancelledError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('cancelled', message, options);
    this.name = 'CancelledError';
  }
}

/** Map of each code to its gRPC status number and HTTP status: the one error table of the project. */
export const ERROR_TABLE: Record<ErrorCode, { grpc: number; http: number }> = {
  cancelled: { grpc: 1, http: 499 },
  invalid_argument: { grpc: 3, http: 400 },
  deadline_exceeded: { grpc: 4, http: 504 },
  not_found: { grpc: 5, http: 404 },
  already_exists: { grpc: 6, http: 409 },
  permission_denied: { grpc: 7, http: 403 },
  resource_exhausted: { grpc: 8, http: 507 },
  failed_precondition: { grpc: 9, http: 412 },
  aborted: { grpc: 10, http: 409 },
  internal: { grpc: 13, http: 500 },
  unavailable: { grpc: 14, http: 503 },
  data_loss: { grpc: 15, http: 500 },
  unauthenticated: { grpc: 16, http: 401 },
};

/** The code of any thrown value: a VaultError's own code, otherwise `internal`. */
export function errorCodeOf(err: unknown): ErrorCode {
  return err instanceof VaultError ? err.code : 'internal';
}
