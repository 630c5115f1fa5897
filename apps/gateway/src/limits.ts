/**
 * Request limits: at most `maxConcurrent` requests served at once (health probes excepted; the rest get
 * 429 with Retry-After) and uploads of at most `maxUploadBytes` (413: refused up front from
 * Content-Length, or cut off when a chunked body grows past it, so no version is written).
 */
import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { ResourceExhaustedError } from '@distri-vault/shared';
import type { HttpRequest as Request, HttpResponse as Response } from './http-types';
import type { GatewayMetrics } from './metrics';
import { PUBLIC_PATHS } from './auth/auth.guard';

/** An upload larger than the limit: HTTP 413. */
export class PayloadTooLargeError extends ResourceExhaustedError {
  /** Status the error filter answers with (rather than the table's 507). */
  readonly httpStatus = 413;
  constructor(limit: number) {
    super(`upload larger than the gateway's limit of ${limit} bytes`);
    this.name = 'PayloadTooLargeError';
  }
}

/** Too many requests in flight: HTTP 429. */
export class TooManyRequestsError extends ResourceExhaustedError {
  /** Status the error filter answers with. */
  readonly httpStatus = 429;
  constructor(limit: number) {
    super(`the gateway is serving its limit of ${limit} requests; retry shortly`);
    this.name = 'TooManyRequestsError';
  }
}

/** Settings of the limits. */
export interface LimitOptions {
  /** Requests served at once. */
  maxConcurrent: number;
  /** Largest upload body in bytes. */
  maxUploadBytes: number;
}

/** Global guard applying the limits (after authentication). */
@Injectable()
export class LimitGuard implements CanActivate {
  private active = 0;

  constructor(
    private readonly options: LimitOptions,
    private readonly metrics: GatewayMetrics,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    if (PUBLIC_PATHS.has(req.originalUrl.split('?')[0] ?? '')) return true;
    if (req.method === 'PUT') {
      const length = Number(req.headers['content-length']);
      if (Number.isFinite(length) && length > this.options.maxUploadBytes) {
        this.metrics.refused.inc({ reason: 'size' });
        throw new PayloadTooLargeError(this.options.maxUploadBytes);
      }
    }
    if (this.active >= this.options.maxConcurrent) {
      this.metrics.refused.inc({ reason: 'concurrency' });
      res.setHeader('Retry-After', '1');
      throw new TooManyRequestsError(this.options.maxConcurrent);
    }
    this.active++;
    this.metrics.inFlight.inc();
    res.once('close', () => {
      this.active--;
      this.metrics.inFlight.dec();
    });
    return true;
  }
}

/** Passes `source` through, failing with PayloadTooLargeError once more than `max` bytes went by. */
export async function* limitBytes(source: AsyncIterable<Buffer>, max: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const b of source) {
    n += b.length;
    if (n > max) throw new PayloadTooLargeError(max);
    yield b;
  }
}
