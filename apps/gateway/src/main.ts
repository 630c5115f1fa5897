/** Gateway bootstrap: config -> logger -> token store -> node client -> HTTP app -> "listening" -> shutdown hooks. */
import { join } from 'node:path';
import { announceListening, createLogger, failStartup, onShutdown } from '@distri-vault/shared';
import { TokenStore } from './auth/token-store';
import { loadGatewayConfig } from './config';
import { startGateway } from './gateway';
import { NodeClient } from './node-client';

const NAME = 'gateway';

async function main(): Promise<void> {
  let log = createLogger(NAME);
  try {
    const config = loadGatewayConfig();
    log = createLogger(NAME, config.logLevel, { node: config.nodeAddress });
    const { store: tokens, created } = await TokenStore.open(config.dataDir);
    if (created) {
      // Shown once, on the terminal (stderr), never in the JSON log; the file keeps it for the local CLI.
      process.stderr.write(`distri-vault gateway: created a read-write access token (saved in ${created.file}):\n  ${created.token}\n`);
      log.info({ tokenFile: created.file }, 'first access token created');
    }
    log.info({ tokensFile: join(config.dataDir, 'tokens.json') }, 'token store open');
    const node = new NodeClient({}, { address: config.nodeAddress });
    const limits = { maxConcurrent: config.maxConcurrent, maxUploadBytes: config.maxUploadBytes };
    const gateway = await startGateway({ node, log, tokens, limits }, { host: config.host, port: config.port });
    announceListening(log, NAME, config.host, gateway.port);
    onShutdown(log, async () => {
      await gateway.close();
      node.close();
    });
  } catch (err) {
    failStartup(log, err);
  }
}

void main();
