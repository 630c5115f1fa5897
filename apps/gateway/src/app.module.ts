/** Nest wiring only: controllers plus the NodeClient, logger and token store, provided by token. */
import { type DynamicModule, Module } from '@nestjs/common';
import type { Logger } from '@distri-vault/shared';
import { FilesController } from './files.controller';
import { HealthController } from './health.controller';
import { NetworkController } from './network.controller';
import { MessagesController } from './messages.controller';
import { TokensController } from './tokens.controller';
import { VersionsController } from './versions.controller';
import { KeysController } from './keys.controller';
import { MetricsController } from './metrics.controller';
import type { GatewayMetrics } from './metrics';
import type { LimitOptions } from './limits';
import type { TokenStore } from './auth/token-store';
import type { NodeClient } from './node-client';
import { LIMITS, LOGGER, METRICS, NODE_CLIENT, TOKEN_STORE } from './tokens';

/** What the module is built from. */
export interface AppComponents {
  /** Client of the home node. */
  node: NodeClient;
  /** Process logger. */
  log: Logger;
  /** Bearer tokens. */
  tokens: TokenStore;
  /** Prometheus metrics (a fresh registry when absent). */
  metrics?: GatewayMetrics;
  /** Request limits (defaults in config.ts when absent). */
  limits?: LimitOptions;
}

/** The gateway's only module. */
@Module({})
export class AppModule {
  /** A module serving the API over the given components. */
  static forRoot(components: AppComponents): DynamicModule {
    return {
      module: AppModule,
      controllers: [FilesController, VersionsController, NetworkController, MessagesController, HealthController, TokensController, MetricsController, KeysController],
      providers: [
        { provide: NODE_CLIENT, useValue: components.node },
        { provide: LOGGER, useValue: components.log },
        { provide: TOKEN_STORE, useValue: components.tokens },
        { provide: METRICS, useValue: components.metrics },
        { provide: LIMITS, useValue: components.limits },
      ],
    };
  }
}
