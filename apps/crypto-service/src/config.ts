/**
 * The crypto-service's configuration: the only file of the app that reads process.env.
 *
 * Variables (default):
 *   CRYPTO_HOST     interface to bind (127.0.0.1)
 *   CRYPTO_PORT     TCP port to listen on; 0 asks the OS for a free one (7102)
 *   CRYPTO_HEALTH_ADDRESS  host:port of a plaintext listener serving grpc.health.v1 only, for probes that
 *                   dial the pod IP (Kubernetes); empty: none ('')
 *   CRYPTO_KEY_DIR  directory holding vault-key.json; created 0700 with the key on first start (.vault/node1/keys)
 *   CRYPTO_PASSPHRASE_FILE  file holding the key file's passphrase (one line); when set, a new key file is
 *                   written protected (scrypt), and a protected one is opened with it (empty: no passphrase)
 *   LOG_LEVEL       pino level: fatal, error, warn, info, debug, trace or silent (info)
 */
import { z } from 'zod';
import { healthAddressVar, loadConfig, logLevelVar, portVar } from '@distri-vault/shared';

/** Schema of the crypto-service's environment. */
export const cryptoConfigSchema = z.object({
  CRYPTO_HOST: z.string().min(1).default('127.0.0.1'),
  CRYPTO_PORT: portVar(7102),
  CRYPTO_HEALTH_ADDRESS: healthAddressVar(),
  CRYPTO_KEY_DIR: z.string().min(1).default('.vault/node1/keys'),
  CRYPTO_PASSPHRASE_FILE: z.string().default(''),
  LOG_LEVEL: logLevelVar(),
});

/** The validated configuration. */
export type CryptoConfig = z.infer<typeof cryptoConfigSchema>;

/** Reads and validates the configuration; throws ConfigError naming every bad variable. */
export function loadCryptoConfig(env: NodeJS.ProcessEnv = process.env): CryptoConfig {
  return loadConfig(cryptoConfigSchema, env);
}
