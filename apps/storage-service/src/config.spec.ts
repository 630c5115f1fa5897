import { ConfigError } from '@distri-vault/shared';
import { loadStorageConfig } from './config';

describe('storage-service config', () => {
  it('has defaults that give a working local node', () => {
    expect(loadStorageConfig({})).toEqual({
      STORAGE_HOST: '127.0.0.1',
      STORAGE_PORT: 7103,
      STORAGE_HEALTH_ADDRESS: '',
      STORAGE_DATA_DIR: '.vault/node1/data',
      STORAGE_FOLDER_QUOTA_BYTES: 0,
      STORAGE_RESERVE_BYTES: 256 * 1024 * 1024,
      STORAGE_SCRUB_BYTES_PER_SEC: 1024 * 1024,
      STORAGE_SCRUB_INTERVAL_S: 3600,
      LOG_LEVEL: 'info',
    });
  });

  it('reads every variable', () => {
    expect(
      loadStorageConfig({
        STORAGE_HOST: '0.0.0.0',
        STORAGE_PORT: '0',
        STORAGE_HEALTH_ADDRESS: '0.0.0.0:7113',
        STORAGE_DATA_DIR: '/srv/data',
        STORAGE_FOLDER_QUOTA_BYTES: '1000',
        STORAGE_RESERVE_BYTES: '0',
        STORAGE_SCRUB_BYTES_PER_SEC: '0',
        STORAGE_SCRUB_INTERVAL_S: '60',
        LOG_LEVEL: 'debug',
      }),
    ).toEqual({
      STORAGE_HOST: '0.0.0.0',
      STORAGE_PORT: 0,
      STORAGE_HEALTH_ADDRESS: '0.0.0.0:7113',
      STORAGE_DATA_DIR: '/srv/data',
      STORAGE_FOLDER_QUOTA_BYTES: 1000,
      STORAGE_RESERVE_BYTES: 0,
      STORAGE_SCRUB_BYTES_PER_SEC: 0,
      STORAGE_SCRUB_INTERVAL_S: 60,
      LOG_LEVEL: 'debug',
    });
  });

  it('names every bad variable', () => {
    let err: unknown;
    try {
      loadStorageConfig({ STORAGE_HEALTH_ADDRESS: 'nowhere', STORAGE_PORT: '70000', LOG_LEVEL: 'loud', STORAGE_DATA_DIR: '', STORAGE_FOLDER_QUOTA_BYTES: '-1', STORAGE_SCRUB_BYTES_PER_SEC: 'fast' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const key of ['STORAGE_HEALTH_ADDRESS', 'STORAGE_PORT', 'LOG_LEVEL', 'STORAGE_DATA_DIR', 'STORAGE_FOLDER_QUOTA_BYTES', 'STORAGE_SCRUB_BYTES_PER_SEC']) expect(msg).toContain(key);
  });
});
