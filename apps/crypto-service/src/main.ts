/** crypto-service bootstrap: config -> logger -> vault key -> engine -> gRPC server -> announce -> shutdown. */
import { announceListening, createLogger, failStartup, onShutdown, startGrpcServer } from '@distri-vault/shared';
import { CryptoServiceService } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { loadCryptoConfig, type CryptoConfig } from './config';
import { CryptoEngine } from './domain/crypto-engine';
import { loadOrCreateVaultKey } from './domain/vault-key';
import { CRYPTO_SERVICE_NAME, cryptoServiceImpl } from './grpc/crypto.grpc';

const SERVICE = 'crypto-service';

async function main(): Promise<void> {
  let config: CryptoConfig;
  try {
    config = loadCryptoConfig();
  } catch (err) {
    failStartup(createLogger(SERVICE, 'info'), err);
  }
  const log = createLogger(SERVICE, config.LOG_LEVEL);
  try {
    const { key, created, path } = await loadOrCreateVaultKey(config.CRYPTO_KEY_DIR);
    log.info({ path, fingerprint: key.fingerprint, created }, created ? 'vault key created' : 'vault key loaded');
    const engine = new CryptoEngine({ vaultKey: key });
    const server = await startGrpcServer({
      host: config.CRYPTO_HOST,
      port: config.CRYPTO_PORT,
      log,
      services: [{ name: CRYPTO_SERVICE_NAME, definition: CryptoServiceService, implementation: cryptoServiceImpl(engine, log) }],
    });
    announceListening(log, 'crypto', config.CRYPTO_HOST, server.port);
    onShutdown(log, () => server.close());
  } catch (err) {
    failStartup(log, err);
  }
}

void main();
