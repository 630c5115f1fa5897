/**
 * crypto-service bootstrap: config -> logger -> vault key -> engine -> gRPC server -> announce -> shutdown.
 *
 * Also offline commands on the same configuration (CRYPTO_KEY_DIR, CRYPTO_PASSPHRASE_FILE):
 *   main.js export-recovery-key    prints the vault key as a printable recovery key on stdout
 *   main.js import-recovery-key    reads a recovery key on stdin and writes the key file (never replaces one)
 *   main.js rotate-vault-key       makes a fresh vault key current, keeping the old one to open older data
 *   main.js retire-vault-key <fp> --shred  deletes a previous vault key: what only it wrapped becomes unreadable
 * The running service rotates and retires online too (RotateVaultKey / RetireVaultKey, see README.md).
 */
import { promises as fs } from 'node:fs';
import { announceListening, createLogger, failStartup, onShutdown, startGrpcServer } from '@distri-vault/shared';
import { CryptoServiceService } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { loadCryptoConfig, type CryptoConfig } from './config';
import { CryptoEngine } from './domain/crypto-engine';
import { KeyringManager } from './domain/keyring';
import { exportRecoveryKey, importRecoveryKey, loadKeyring, retireVaultKey, rotateVaultKey } from './domain/vault-key';
import { CRYPTO_SERVICE_NAME, cryptoServiceImpl } from './grpc/crypto.grpc';

const SERVICE = 'crypto-service';

/** The passphrase in CRYPTO_PASSPHRASE_FILE (first line), or undefined when the variable is empty. */
async function readPassphrase(config: CryptoConfig): Promise<string | undefined> {
  if (!config.CRYPTO_PASSPHRASE_FILE) return undefined;
  const text = await fs.readFile(config.CRYPTO_PASSPHRASE_FILE, 'utf8');
  return text.split(/\r?\n/)[0];
}

async function main(): Promise<void> {
  let config: CryptoConfig;
  try {
    config = loadCryptoConfig();
  } catch (err) {
    failStartup(createLogger(SERVICE, 'info'), err);
  }
  const log = createLogger(SERVICE, config.LOG_LEVEL);
  try {
    const passphrase = await readPassphrase(config);
    const { current, previous } = await loadKeyring(config.CRYPTO_KEY_DIR, { passphrase });
    const { key, created, path, protected: isProtected } = current;
    const previousFingerprints = previous.map((k) => k.fingerprint);
    log.info({ path, fingerprint: key.fingerprint, created, protected: isProtected, previousFingerprints }, created ? 'vault key created' : 'vault key loaded');
    if (passphrase !== undefined && !isProtected) log.warn({ path }, 'a passphrase is configured but the key file is not protected by one (export the recovery key, move the file away and import it with the passphrase)');
    const engine = new CryptoEngine({ vaultKey: key, previousKeys: previous });
    const keyring = new KeyringManager({ engine }, { dir: config.CRYPTO_KEY_DIR, passphrase });
    const server = await startGrpcServer({
      host: config.CRYPTO_HOST,
      port: config.CRYPTO_PORT,
      log,
      services: [{ name: CRYPTO_SERVICE_NAME, definition: CryptoServiceService, implementation: cryptoServiceImpl(engine, log, keyring) }],
      healthAddress: config.CRYPTO_HEALTH_ADDRESS || undefined,
    });
    announceListening(log, 'crypto', config.CRYPTO_HOST, server.port);
    if (server.healthPort !== undefined) announceListening(log, 'crypto-health', config.CRYPTO_HEALTH_ADDRESS.replace(/:\d+$/, ''), server.healthPort);
    onShutdown(log, () => server.close());
  } catch (err) {
    failStartup(log, err);
  }
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

/** The offline commands: plain text out, exit 0 on success, 1 with a one-line message on failure. */
async function command(name: string): Promise<void> {
  try {
    const config = loadCryptoConfig();
    const passphrase = await readPassphrase(config);
    if (name === 'export-recovery-key') {
      process.stdout.write(`${await exportRecoveryKey(config.CRYPTO_KEY_DIR, passphrase)}\n`);
    } else if (name === 'rotate-vault-key') {
      const r = await rotateVaultKey(config.CRYPTO_KEY_DIR, { passphrase });
      process.stdout.write(
        `vault key ${r.current.key.fingerprint} is current; ${r.previous} is kept to open older data until retired. ` +
          `Restart the crypto-service and write down the new recovery key (export-recovery-key).\n`,
      );
    } else if (name === 'retire-vault-key') {
      const fp = process.argv[3] ?? '';
      // Offline there is no re-wrap: everything only this key wraps, live files included, is lost with it.
      if (!process.argv.includes('--shred')) {
        throw new Error(
          `refusing to retire ${fp || '(no fingerprint)'} offline without --shred: nothing is re-wrapped offline, so every file whose data ` +
            `key only this key wraps becomes unreadable for good. To rotate and keep the files, use the online rotation ` +
            `(distri-vault keys rotate / POST /v1/keys/rotate), which re-wraps every kept version before it retires the old key.`,
        );
      }
      await retireVaultKey(config.CRYPTO_KEY_DIR, fp, { passphrase });
      process.stdout.write(`vault key ${fp} retired: what only it wrapped is unreadable for good. Restart the crypto-service.\n`);
    } else {
      const loaded = await importRecoveryKey(config.CRYPTO_KEY_DIR, await readStdin(), { passphrase });
      process.stdout.write(`imported vault key ${loaded.key.fingerprint} into ${loaded.path}${loaded.protected ? ' (passphrase-protected)' : ''}\n`);
    }
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

const cmd = process.argv[2];
if (cmd === undefined) void main();
else if (['export-recovery-key', 'import-recovery-key', 'rotate-vault-key', 'retire-vault-key'].includes(cmd)) void command(cmd);
else {
  process.stderr.write(`unknown command ${cmd}; usage: main.js [export-recovery-key | import-recovery-key | rotate-vault-key | retire-vault-key <fingerprint> --shred]\n`);
  process.exitCode = 2;
}
