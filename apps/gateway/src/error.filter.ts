/**
 * The one place HTTP errors are written: every thrown value (domain errors, Nest's own exceptions,
 * unknown routes, express decode errors) becomes `{"error":{"code","message"}}` with the status from
 * ERROR_TABLE. Internal errors get a generic message; their cause is logged, never sent.
 */
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { HttpRequest as Request, HttpResponse as Response } from './http-types';
import { ERROR_TABLE, type ErrorCode, type Logger, VaultError } from '@distri-vault/shared';
import { RangeNotSatisfiableError } from './ranges';

/** The JSON body of every error response. */
export interface ErrorBody {
  /** The error. */
  error: {
    /** One of ErrorCode, e.g. `not_found`. */
    code: ErrorCode;
    /** Safe to show to the caller. */
    message: string;
  };
}

const BY_HTTP: Record<number, ErrorCode> = {
  400: 'invalid_argument',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  405: 'invalid_argument',
  408: 'deadline_exceeded',
  409: 'aborted',
  412: 'failed_precondition',
  413: 'resource_exhausted',
  429: 'resource_exhausted',
  499: 'cancelled',
  503: 'unavailable',
  504: 'deadline_exceeded',
  507: 'resource_exhausted',
};

/** The status, code and message to answer for any thrown value. */
export function describeError(err: unknown): { status: number; code: ErrorCode; message: string; internal: boolean } {
  if (err instanceof VaultError) {
    if (err.code === 'internal') return { status: 500, code: 'internal', message: 'internal error', internal: true };
    // A few gateway errors name a more precise HTTP status than their code's row in the table: 413, 429
    // (resource_exhausted) and 416 (a Range past the end: invalid_argument, with the size).
    const precise = (err as { httpStatus?: unknown }).httpStatus;
    const status = typeof precise === 'number' ? precise : ERROR_TABLE[err.code].http;
    return { status, code: err.code, message: err.message, internal: false };
  }
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const code = BY_HTTP[status] ?? (status < 500 ? 'invalid_argument' : 'internal');
    if (code === 'internal') return { status: 500, code, message: 'internal error', internal: true };
    const message = status === 404 ? 'no such route' : status === 400 ? 'malformed request' : err.message;
    return { status: ERROR_TABLE[code].http, code, message, internal: false };
  }
  return { status: 500, code: 'internal', message: 'internal error', internal: true };
}

/** Global Nest exception filter writing the project's JSON error shape. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(private readonly log: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const d = describeError(err);
    const reqId = res.locals?.['requestId'];
    if (d.internal) this.log.error({ err, reqId, method: req.method, code: d.code }, 'internal error');
    else this.log.debug({ reqId, method: req.method, code: d.code, reason: d.message }, 'request failed');
    if (res.headersSent) {
      // Part of a body is out: the only honest answer left is a broken connection.
      this.log.warn({ reqId, method: req.method, code: d.code }, 'response aborted after its head');
      res.destroy();
      return;
    }
    if (res.destroyed || res.writableEnded) return;
    if (err instanceof RangeNotSatisfiableError) res.setHeader('Content-Range', `bytes */${err.size}`);
    const body: ErrorBody = { error: { code: d.code, message: d.message } };
    res.status(d.status).json(body);
  }
}
