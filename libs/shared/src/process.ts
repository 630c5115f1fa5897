/**
 * Process lifecycle shared by every app's main.ts: announce the bound port on stdout (one JSON log line
 * with msg "listening", which the local launcher and the system tests read), and stop cleanly on signals.
 */
import type { Logger } from 'pino';

/**
 * Logs the line tools and tests wait for: `{"msg":"listening","name":...,"port":...}`. Written whatever
 * LOG_LEVEL is (even `warn` or `silent`): launchers depend on it to learn the bound port.
 */
export function announceListening(log: Logger, name: string, host: string, port: number): void {
  const level = log.levels.values[log.level] ?? 30;
  const announcer = level > 30 ? log.child({}, { level: 'info' }) : log;
  announcer.info({ name, host, port, address: `${host}:${port}` }, 'listening');
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits; a second signal exits at once. */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** Logs a fatal start-up error (config, bind, key files) and exits non-zero. */
export function failStartup(log: Logger, err: unknown): never {
  log.fatal({ err }, 'failed to start');
  process.exit(1);
}
