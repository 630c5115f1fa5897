/**
 * The storage-service's configuration: the only file of the app that reads process.env.
 *
 * Variables (default):
 *   STORAGE_HOST      interface to bind (127.0.0.1)
 *   STORAGE_PORT      TCP port to listen on; 0 asks the OS for a free one (7103)
 *   STORAGE_HEALTH_ADDRESS  host:port of a plaintext listener serving grpc.health.v1 only, for probes that
 *                     dial the pod IP (Kubernetes); empty: none ('')
 *   STORAGE_DATA_DIR  the node's data directory, one sub-directory per folder; created when missing
 *                     (.vault/node1/data, relative to the working directory)
 *   STORAGE_FOLDER_QUOTA_BYTES   most bytes one folder may hold; 0 = no limit (0)
 *   STORAGE_RESERVE_BYTES        free disk space a put must leave; 0 = none (268435456 = 256 MiB)
 *   STORAGE_SCRUB_BYTES_PER_SEC  scrubber read rate; 0 disables the scrubber (1048576 = 1 MiB/s)
 *   STORAGE_SCRUB_INTERVAL_S     pause between scrub passes, seconds (3600)
 *   LOG_LEVEL         pino level: fatal, error, warn, info, debug, trace or silent (info)
 */
import { z } from 'zod';
import { healthAddressVar, intVar, loadConfig, logLevelVar, portVar } from '@distri-vault/shared';

/** Schema of the storage-service's environment. */
export const storageConfigSchema = z.object({
  STORAGE_HOST: z.string().min(1).default('127.0.0.1'),
  STORAGE_PORT: portVar(7103),
  STORAGE_HEALTH_ADDRESS: healthAddressVar(),
  STORAGE_DATA_DIR: z.string().min(1).default('.vault/node1/data'),
  STORAGE_FOLDER_QUOTA_BYTES: intVar(0, 0, Number.MAX_SAFE_INTEGER),
  STORAGE_RESERVE_BYTES: intVar(256 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
  STORAGE_SCRUB_BYTES_PER_SEC: intVar(1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
  STORAGE_SCRUB_INTERVAL_S: intVar(3600, 0, 7 * 24 * 3600),
  LOG_LEVEL: logLevelVar(),
});

/** The validated configuration. */
export type StorageConfig = z.infer<typeof storageConfigSchema>;

/** Reads and validates the configuration; throws ConfigError naming every bad variable. */
export function loadStorageConfig(env: NodeJS.ProcessEnv = process.env): StorageConfig {
  return loadConfig(storageConfigSchema, env);
}
