/**
 * The few express additions to Node's request and response the gateway uses (no @types/express is
 * installed, and the gateway needs nothing more).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An express request. */
export interface HttpRequest extends IncomingMessage {
  /** The URL as received, before any rewriting (path and query). */
  originalUrl: string;
  /** The matched route, once routed. */
  route?: { path?: string };
}

/** An express response. */
export interface HttpResponse extends ServerResponse {
  /** Per-request values shared by middleware, controllers and the filter (requestId, bytes). */
  locals: Record<string, unknown>;
  /** Sets the status code. */
  status(code: number): this;
  /** Sends a JSON body. */
  json(body: unknown): this;
}

/** An express middleware. */
export type Middleware = (req: HttpRequest, res: HttpResponse, next: (err?: unknown) => void) => void;
