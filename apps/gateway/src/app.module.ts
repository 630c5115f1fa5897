/** Nest wiring only: controllers plus the NodeClient, logger and token store, provided by token. */
import { type DynamicModule, Module } from '@nestjs/common';
import type { Logger } from '@distri-vault/shared';
import { FilesController } from './files.controller';
import { HealthController } from './health.controller';
import { NetworkController } from './network.controller';
import { TokensController } from './tokens.controller';
import { VersionsController } from './versions.controller';
import type { TokenStore } from './auth/token-store';
import type { NodeClient } from './node-client';
import { LOGGER, NODE_CLIENT, TOKEN_STORE } from './tokens';

/** What the module is built from. */
export interface AppComponents {
  /** Client of the home node. */
  node: NodeClient;
  /** Process logger. */
  log: Logger;
  /** Bearer tokens. */
  tokens: TokenStore;
}

/** The gateway's only module. */
@Module({})
export class AppModule {
  /** A module serving the API over the given components. */
  static forRoot(components: AppComponents): DynamicModule {
    return {
      module: AppModule,
      controllers: [FilesController, VersionsController, NetworkController, HealthController, TokensController],
      providers: [
        { provide: NODE_CLIENT, useValue: components.node },
        { provide: LOGGER, useValue: components.log },
        { provide: TOKEN_STORE, useValue: components.tokens },
      ],
    };
  }
}
