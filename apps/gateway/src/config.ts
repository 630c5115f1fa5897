/**
 * Gateway configuration: the only file that reads process.env.
 *
 * Variables (default):
 * - GATEWAY_HOST (127.0.0.1): interface the HTTP API listens on.
 * - GATEWAY_PORT (8080): HTTP port; 0 asks the OS for a free one (the bound port is logged in "listening").
 * - GATEWAY_NODE_ADDRESS (127.0.0.1:7100): host:port of the home peer-node's NodeService (gRPC).
 * - GATEWAY_DATA_DIR (.vault/gateway): bearer tokens (tokens.json, and on first start the first token in
 *   `token`), both 0600.
 * - GATEWAY_MAX_CONCURRENT (64): requests served at once (health probes excepted); more get 429.
 * - GATEWAY_MAX_UPLOAD_BYTES (1099511627776 = 1 TiB): largest upload; larger ones get 413 and write nothing.
 * - LOG_LEVEL (info): pino level (fatal, error, warn, info, debug, trace, silent).
 */
import { z } from 'zod';
import { addressVar, intVar, loadConfig, logLevelVar, portVar } from '@distri-vault/shared';

/** Default of GATEWAY_MAX_CONCURRENT. */
export const DEFAULT_MAX_CONCURRENT = 64;
/** Default of GATEWAY_MAX_UPLOAD_BYTES (1 TiB). */
export const DEFAULT_MAX_UPLOAD_BYTES = 2 ** 40;

/** Schema of the gateway's environment. */
export const GatewayConfigSchema = z.object({
  GATEWAY_HOST: z.string().min(1).default('127.0.0.1'),
  GATEWAY_PORT: portVar(8080),
  GATEWAY_NODE_ADDRESS: addressVar('127.0.0.1:7100'),
  GATEWAY_DATA_DIR: z.string().min(1).default('.vault/gateway'),
  GATEWAY_MAX_CONCURRENT: intVar(DEFAULT_MAX_CONCURRENT, 1, 100_000),
  GATEWAY_MAX_UPLOAD_BYTES: intVar(DEFAULT_MAX_UPLOAD_BYTES, 1, Number.MAX_SAFE_INTEGER),
  LOG_LEVEL: logLevelVar(),
});

/** Validated gateway settings. */
export interface GatewayConfig {
  /** Interface to listen on. */
  host: string;
  /** HTTP port (0 = any free port). */
  port: number;
  /** host:port of the home node's NodeService. */
  nodeAddress: string;
  /** Directory of the token store. */
  dataDir: string;
  /** Requests served at once. */
  maxConcurrent: number;
  /** Largest upload in bytes. */
  maxUploadBytes: number;
  /** pino log level. */
  logLevel: string;
}

/** Reads and validates the gateway's configuration; throws ConfigError naming every bad variable. */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const c = loadConfig(GatewayConfigSchema, env);
  return { host: c.GATEWAY_HOST, port: c.GATEWAY_PORT, nodeAddress: c.GATEWAY_NODE_ADDRESS, dataDir: c.GATEWAY_DATA_DIR, maxConcurrent: c.GATEWAY_MAX_CONCURRENT, maxUploadBytes: c.GATEWAY_MAX_UPLOAD_BYTES, logLevel: c.LOG_LEVEL };
}
