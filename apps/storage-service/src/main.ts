/**
 * storage-service bootstrap: config -> logger -> object store -> gRPC server (health, reflection) ->
 * announce the bound port -> stop cleanly on signals.
 */
import { announceListening, createLogger, failStartup, onShutdown, startGrpcServer } from '@distri-vault/shared';
import { loadStorageConfig } from './config';
import { DiskObjectStore } from './domain/disk-object-store';
import { Scrubber } from './domain/scrubber';
import { storageServiceEntry } from './grpc/storage.grpc';

const SERVICE = 'storage-service';

async function main(): Promise<void> {
  // Until the config is read, log at info so a bad configuration is still reported.
  let log = createLogger(SERVICE, 'info');
  try {
    const config = loadStorageConfig();
    log = createLogger(SERVICE, config.LOG_LEVEL);
    const store = await DiskObjectStore.open(
      { log },
      { dataDir: config.STORAGE_DATA_DIR, folderQuotaBytes: config.STORAGE_FOLDER_QUOTA_BYTES, reserveBytes: config.STORAGE_RESERVE_BYTES },
    );
    const scrubber = new Scrubber({ target: store, log }, { bytesPerSecond: config.STORAGE_SCRUB_BYTES_PER_SEC, intervalMs: config.STORAGE_SCRUB_INTERVAL_S * 1000 });
    const server = await startGrpcServer({
      host: config.STORAGE_HOST,
      port: config.STORAGE_PORT,
      services: [storageServiceEntry(store, log, scrubber)],
      log,
      healthAddress: config.STORAGE_HEALTH_ADDRESS || undefined,
    });
    announceListening(log, 'storage', config.STORAGE_HOST, server.port);
    if (server.healthPort !== undefined) announceListening(log, 'storage-health', config.STORAGE_HEALTH_ADDRESS.replace(/:\d+$/, ''), server.healthPort);
    // Index every folder in the background: requests meanwhile wait for their folder's scan.
    const started = performance.now();
    store.warmIndex().then(
      (folders) => log.info({ folders, ms: Math.round(performance.now() - started) }, 'folders indexed'),
      (err: unknown) => log.error({ err }, 'indexing folders failed'),
    );
    scrubber.start();
    onShutdown(log, async () => {
      await scrubber.stop();
      await server.close();
      await store.close();
    });
  } catch (err) {
    failStartup(log, err);
  }
}

void main();
