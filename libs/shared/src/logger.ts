/**
 * JSON logs (pino) to stdout. Fields used across services: rpc, peer, folder, chunk, bytes, ms, code.
 * Never log payloads, keys, plaintext file names on peers, or whole requests.
 */
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Creates the process logger for one service. */
export function createLogger(service: string, level: string = process.env['LOG_LEVEL'] ?? 'info', extra: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service, pid: process.pid, ...extra }, timestamp: pino.stdTimeFunctions.isoTime });
}
