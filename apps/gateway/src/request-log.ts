/**
 * Per-request logging: one JSON line per request (method, route pattern, status, ms, bytes) with a
 * request ID, echoed from X-Request-Id when the client sent a sane one, generated otherwise.
 * Never logs bodies, and logs the route pattern rather than the URL, which holds file names.
 */
import { randomUUID } from 'node:crypto';
import type { Middleware } from './http-types';
import type { LoggerService } from '@nestjs/common';
import type { Logger } from '@distri-vault/shared';
import type { GatewayMetrics } from './metrics';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Express middleware logging each request once it finishes or its connection closes. */
export function requestLogger(log: Logger, metrics?: GatewayMetrics): Middleware {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const sent = req.headers['x-request-id'];
    const reqId = typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID();
    res.locals['requestId'] = reqId;
    res.setHeader('X-Request-Id', reqId);
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const length = Number(res.getHeader('content-length'));
      const bytes = typeof res.locals['bytes'] === 'number' ? res.locals['bytes'] : Number.isFinite(length) ? length : 0;
      const route = req.route?.path ?? null;
      const fields = { reqId, method: req.method, route, status: res.statusCode, ms: Math.round(ms * 10) / 10, bytes };
      if (res.writableFinished) log.info(fields, 'request');
      else log.warn({ ...fields, aborted: true }, 'request aborted');
      metrics?.observe({ method: req.method ?? '', route, status: res.statusCode, seconds: ms / 1000, bytes, aborted: !res.writableFinished });
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}

/** Nest's own logging, sent to pino (its route-mapping chatter at debug). */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly pino: Logger) {}
  log(message: unknown, context?: string): void {
    this.pino.debug({ context }, String(message));
  }
  error(message: unknown, stackOrContext?: string, context?: string): void {
    this.pino.error({ context: context ?? stackOrContext }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.pino.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.pino.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.pino.trace({ context }, String(message));
  }
}
