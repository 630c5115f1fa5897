/**
 * Builds and starts the HTTP API: a Nest app on express with body parsing off (request bodies stay
 * streams), the request logger, the bearer-token guard, and the one exception filter.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { type AppComponents, AppModule } from './app.module';
import { AuthGuard } from './auth/auth.guard';
import { DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_UPLOAD_BYTES } from './config';
import { LimitGuard } from './limits';
import { GatewayMetrics } from './metrics';
import { serveOpenApi } from './openapi';
import { ErrorFilter } from './error.filter';
import { PinoNestLogger, requestLogger } from './request-log';

/** Options of a gateway. */
export interface GatewayOptions {
  /** Interface to listen on. */
  host: string;
  /** Port; 0 for any free one. */
  port: number;
}

/** A listening gateway. */
export interface RunningGateway {
  /** The bound port (the real one when 0 was asked for). */
  port: number;
  /** Stops accepting requests and closes the app (the NodeClient stays open: its owner closes it). */
  close(): Promise<void>;
}

/** Creates the Nest app over `node` and listens on `options.host:options.port`. */
export async function startGateway(components: AppComponents, options: GatewayOptions): Promise<RunningGateway> {
  const { log } = components;
  const metrics = components.metrics ?? new GatewayMetrics();
  const limits = components.limits ?? { maxConcurrent: DEFAULT_MAX_CONCURRENT, maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES };
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot({ ...components, metrics, limits }), {
    bodyParser: false,
    logger: new PinoNestLogger(log),
    abortOnError: false,
  });
  app.disable('x-powered-by');
  // The only ETag clients should see is a file's SHA-256, not express's hash of a JSON body.
  app.set('etag', false);
  app.use(requestLogger(log, metrics));
  app.useGlobalGuards(new AuthGuard(components.tokens), new LimitGuard(limits, metrics));
  app.useGlobalFilters(new ErrorFilter(log));
  serveOpenApi(app);
  await app.listen(options.port, options.host);
  const server = app.getHttpServer() as Server;
  // Uploads of any size: Node's default 5-minute limit on receiving a whole request would cut big ones.
  server.requestTimeout = 0;
  return {
    port: (server.address() as AddressInfo).port,
    close: () => app.close(),
  };
}
