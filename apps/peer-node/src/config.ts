/**
 * peer-node configuration: the only place that reads process.env. Every variable, with its default:
 *
 * | variable               | default                    | meaning                                                  |
 * |------------------------|----------------------------|----------------------------------------------------------|
 * | NODE_HOST              | 127.0.0.1                  | interface both servers bind to                           |
 * | NODE_CLIENT_PORT       | 7100                       | NodeService (the gateway's port); 0 picks a free port    |
 * | NODE_PEER_PORT         | 7101                       | PeerService (other nodes' port); 0 picks a free port     |
 * | NODE_ADVERTISE_ADDRESS | NODE_HOST:<bound peer port>| host:port other nodes dial to reach this node            |
 * | NODE_IDENTITY_DIR      | .vault/node1/identity      | where the node's identity key lives (back it up)         |
 * | NODE_NETWORK_SECRET_FILE | .vault/network.secret    | the network secret (hex, shared by all members); required |
 * | NODE_TLS_DIR           | NODE_IDENTITY_DIR          | where the PeerService TLS key and certificate are created |
 * | NODE_CRYPTO_ADDRESS    | 127.0.0.1:7102             | this node's crypto-service                               |
 * | NODE_STORAGE_ADDRESS   | 127.0.0.1:7103             | this node's storage-service                              |
 * | NODE_BOOTSTRAP         | (empty)                    | comma-separated peer addresses to join through           |
 * | NODE_CHUNK_SIZE        | 1048576                    | plaintext bytes per chunk (4096 .. 1048576)              |
 * | NODE_REPLICAS          | 3                          | copies of every chunk and manifest, the owner's included |
 * | NODE_WINDOW            | 8                          | chunks in flight per upload/download and per peer stream |
 * | NODE_MEMORY_BUDGET_BYTES | 67108864                 | chunk bytes all uploads/downloads hold at once (2x chunk each; 0: no limit) |
 * | NODE_HEARTBEAT_MS      | 2000                       | heartbeat interval on the control streams                |
 * | NODE_SUSPECT_AFTER_MS  | 3 x NODE_HEARTBEAT_MS      | silence after which a member is suspect                  |
 * | NODE_DOWN_AFTER_MS     | 15000 (at least suspect+hb)| silence after which a member is down                     |
 * | NODE_DISCOVERY_DNS     | (empty: none)              | name:port resolved to peer addresses (headless Service)  |
 * | NODE_DISCOVERY_INTERVAL_MS | 30000                  | how often NODE_DISCOVERY_DNS is resolved again           |
 * | NODE_SERVICE_TIMEOUT_MS| 30000                      | deadline of each call to the crypto/storage services     |
 * | NODE_SYNC_INTERVAL_MS  | 300000                     | anti-entropy round with every peer (0: only on connect)  |
 * | NODE_HEDGE_MS          | 300                        | repair reads: ask the next holder too after this long    |
 * | NODE_RECOVERY_LOG_MS   | 3000                       | interval of recovery progress log lines                  |
 * | NODE_WRITE_QUORUM      | 2                          | durable copies (owner's included) a put waits for; 1..R  |
 * | NODE_WRITE_TIMEOUT_MS  | 60000                      | longest an object of a put waits for its quorum: then UNAVAILABLE |
 * | NODE_REPAIR_GRACE_MS   | 60000                      | a member unseen this long is gone: its copies are remade |
 * | NODE_REPAIR_INTERVAL_MS| 30000                      | period of the repair/rebalance pass (also on membership changes) |
 * | NODE_REPAIR_RATE_BYTES | 33554432                   | repair traffic limit, bytes per second (token bucket)    |
 * | LOG_LEVEL              | info                       | pino level                                               |
 */
import { z } from 'zod';
import { addressListVar, intVar, loadConfig, logLevelVar, portVar, addressVar, MAX_CHUNK_PLAINTEXT_BYTES } from '@distri-vault/shared';

const schema = z.object({
  NODE_HOST: z.string().min(1).default('127.0.0.1'),
  NODE_CLIENT_PORT: portVar(7100),
  NODE_PEER_PORT: portVar(7101),
  NODE_ADVERTISE_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'want host:port')
    .optional(),
  NODE_IDENTITY_DIR: z.string().min(1).default('.vault/node1/identity'),
  NODE_NETWORK_SECRET_FILE: z.string().min(1).default('.vault/network.secret'),
  NODE_TLS_DIR: z.string().min(1).optional(),
  NODE_CRYPTO_ADDRESS: addressVar('127.0.0.1:7102'),
  NODE_STORAGE_ADDRESS: addressVar('127.0.0.1:7103'),
  NODE_BOOTSTRAP: addressListVar(''),
  NODE_CHUNK_SIZE: intVar(MAX_CHUNK_PLAINTEXT_BYTES, 4096, MAX_CHUNK_PLAINTEXT_BYTES),
  NODE_REPLICAS: intVar(3, 1, 16),
  NODE_WINDOW: intVar(8, 1, 64),
  NODE_MEMORY_BUDGET_BYTES: intVar(64 * 1024 * 1024, 0, 64 * 1024 * 1024 * 1024),
  NODE_HEARTBEAT_MS: intVar(2000, 100, 60_000),
  NODE_SUSPECT_AFTER_MS: z.coerce.number().int().min(100).max(3_600_000).optional(),
  NODE_DOWN_AFTER_MS: z.coerce.number().int().min(200).max(86_400_000).optional(),
  NODE_DISCOVERY_DNS: z
    .string()
    .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:\d{1,5}$/, 'want name:port')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  NODE_DISCOVERY_INTERVAL_MS: intVar(30_000, 1000, 3_600_000),
  NODE_SERVICE_TIMEOUT_MS: intVar(30_000, 1000, 600_000),
  NODE_SYNC_INTERVAL_MS: intVar(300_000, 0, 86_400_000),
  NODE_HEDGE_MS: intVar(300, 1, 60_000),
  NODE_RECOVERY_LOG_MS: intVar(3000, 100, 600_000),
  NODE_WRITE_QUORUM: intVar(2, 1, 16),
  NODE_WRITE_TIMEOUT_MS: intVar(60_000, 1000, 3_600_000),
  NODE_REPAIR_GRACE_MS: intVar(60_000, 100, 7 * 24 * 3600_000),
  NODE_REPAIR_INTERVAL_MS: intVar(30_000, 100, 24 * 3600_000),
  NODE_REPAIR_RATE_BYTES: intVar(32 * 1024 * 1024, 65_536, 10 * 1024 ** 3),
  LOG_LEVEL: logLevelVar(),
}).refine((c) => c.NODE_WRITE_QUORUM <= c.NODE_REPLICAS, { message: 'NODE_WRITE_QUORUM must not exceed NODE_REPLICAS', path: ['NODE_WRITE_QUORUM'] });

/** The membership timeouts with their defaults applied: suspect 3 heartbeats, down 15 s (and after suspect). */
const resolved = schema
  .transform((c) => {
    const suspect = c.NODE_SUSPECT_AFTER_MS ?? 3 * c.NODE_HEARTBEAT_MS;
    const down = c.NODE_DOWN_AFTER_MS ?? Math.max(15_000, suspect + c.NODE_HEARTBEAT_MS);
    return { ...c, NODE_SUSPECT_AFTER_MS: suspect, NODE_DOWN_AFTER_MS: down };
  })
  .refine((c) => c.NODE_DOWN_AFTER_MS > c.NODE_SUSPECT_AFTER_MS, {
    message: 'must be greater than NODE_SUSPECT_AFTER_MS (3 x NODE_HEARTBEAT_MS unless set)',
    path: ['NODE_DOWN_AFTER_MS'],
  });

/** Validated peer-node settings. */
export type NodeConfig = z.infer<typeof resolved>;

/** Reads and validates the environment; throws ConfigError naming every bad variable. */
export function readConfig(env: NodeJS.ProcessEnv = process.env): NodeConfig {
  return loadConfig(resolved, env);
}
