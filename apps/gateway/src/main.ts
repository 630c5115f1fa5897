/** Gateway bootstrap: config -> logger -> node client -> HTTP app -> "listening" -> shutdown hooks. */
import { announceListening, createLogger, failStartup, onShutdown } from '@distri-vault/shared';
import { loadGatewayConfig } from './config';
import { startGateway } from './gateway';
import { NodeClient } from './node-client';

const NAME = 'gateway';

async function main(): Promise<void> {
  let log = createLogger(NAME);
  try {
    const config = loadGatewayConfig();
    log = createLogger(NAME, config.logLevel, { node: config.nodeAddress });
    const node = new NodeClient({}, { address: config.nodeAddress });
    const gateway = await startGateway({ node, log }, { host: config.host, port: config.port });
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
