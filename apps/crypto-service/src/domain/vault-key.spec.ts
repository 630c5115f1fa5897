import { createHash, hkdfSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateVaultKey, VAULT_KEY_FILE, VaultKeyFileError } from './vault-key';
import { makeTempDir, removeTempDir, seededBytes } from '../testing/fixtures';

describe('vault key custody', () => {
  let root: string;
  beforeEach(async () => {
    root = await makeTempDir();
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  it('creates the key file atomically with private permissions on first start', async () => {
    const dir = join(root, 'node1', 'keys');
    const loaded = await loadOrCreateVaultKey(dir, { now: () => 1_700_000_000_123 });
    expect(loaded.created).toBe(true);
    expect(loaded.path).toBe(join(dir, VAULT_KEY_FILE));
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(loaded.path)).mode & 0o777).toBe(0o600);
    expect(await fs.readdir(dir)).toEqual([VAULT_KEY_FILE]);
    const file = JSON.parse(await fs.readFile(loaded.path, 'utf8'));
    expect(Object.keys(file).sort()).toEqual(['createdUnixMs', 'key', 'version']);
    expect(file.version).toBe(1);
    expect(file.createdUnixMs).toBe(1_700_000_000_123);
    const raw = Buffer.from(file.key, 'base64');
    expect(raw.length).toBe(32);
    const fp = createHash('sha256').update(Buffer.concat([Buffer.from('distri-vault/fingerprint/v1\0'), raw])).digest('hex').slice(0, 16);
    expect(loaded.key.fingerprint).toBe(fp);
    expect(loaded.key.createdUnixMs).toBe(1_700_000_000_123);
    const wrap = Buffer.from(hkdfSync('sha256', raw, Buffer.alloc(0), Buffer.from('distri-vault/wrap/v1'), 32));
    const manifest = Buffer.from(hkdfSync('sha256', raw, Buffer.alloc(0), Buffer.from('distri-vault/manifest/v1'), 32));
    expect(loaded.key.wrapKey.export().equals(wrap)).toBe(true);
    expect(loaded.key.manifestKey.export().equals(manifest)).toBe(true);
    expect(wrap.equals(manifest)).toBe(false);
    expect(wrap.equals(raw) || manifest.equals(raw)).toBe(false);
  });

  it('loads the same key on later starts and never rewrites the file', async () => {
    const first = await loadOrCreateVaultKey(root);
    const before = await fs.readFile(first.path);
    const again = await loadOrCreateVaultKey(root, { now: () => 5 });
    expect(again.created).toBe(false);
    expect(again.key.fingerprint).toBe(first.key.fingerprint);
    expect(again.key.createdUnixMs).toBe(first.key.createdUnixMs);
    expect(again.key.wrapKey.export().equals(first.key.wrapKey.export())).toBe(true);
    expect((await fs.readFile(first.path)).equals(before)).toBe(true);
  });

  it('gives a different key to a different directory', async () => {
    const a = await loadOrCreateVaultKey(join(root, 'a'));
    const b = await loadOrCreateVaultKey(join(root, 'b'));
    expect(a.key.fingerprint).not.toBe(b.key.fingerprint);
  });

  it('agrees on one key when two loads race on an empty directory', async () => {
    const dir = join(root, 'race');
    const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateVaultKey(dir)));
    expect(new Set(results.map((r) => r.key.fingerprint)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await fs.readdir(dir)).toEqual([VAULT_KEY_FILE]);
  });

  const goodKey = seededBytes('vault', 32).toString('base64');
  const malformed: Array<[string, string]> = [
    ['empty file', ''],
    ['not JSON', '{"version":1,'],
    ['a JSON array', '[1]'],
    ['JSON null', 'null'],
    ['unknown version', JSON.stringify({ version: 2, key: goodKey, createdUnixMs: 1 })],
    ['missing key', JSON.stringify({ version: 1, createdUnixMs: 1 })],
    ['key of 31 bytes', JSON.stringify({ version: 1, key: seededBytes('short', 31).toString('base64'), createdUnixMs: 1 })],
    ['key of 33 bytes', JSON.stringify({ version: 1, key: seededBytes('long', 33).toString('base64'), createdUnixMs: 1 })],
    ['key with junk characters', JSON.stringify({ version: 1, key: `${goodKey.slice(0, 10)}*${goodKey.slice(10)}`, createdUnixMs: 1 })],
    ['negative createdUnixMs', JSON.stringify({ version: 1, key: goodKey, createdUnixMs: -1 })],
    ['string createdUnixMs', JSON.stringify({ version: 1, key: goodKey, createdUnixMs: '1' })],
  ];

  it.each(malformed)('refuses a key file that is %s and leaves it untouched', async (_what, contents) => {
    const path = join(root, VAULT_KEY_FILE);
    await fs.writeFile(path, contents, { mode: 0o600 });
    const before = await fs.stat(path);
    const err = await loadOrCreateVaultKey(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultKeyFileError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).not.toContain(goodKey);
    expect(await fs.readFile(path, 'utf8')).toBe(contents);
    expect((await fs.stat(path)).mtimeMs).toBe(before.mtimeMs);
    expect(await fs.readdir(root)).toEqual([VAULT_KEY_FILE]);
  });

  it('accepts a well-formed file written by hand', async () => {
    await fs.writeFile(join(root, VAULT_KEY_FILE), JSON.stringify({ version: 1, key: goodKey, createdUnixMs: 42 }));
    const loaded = await loadOrCreateVaultKey(root);
    expect(loaded.created).toBe(false);
    expect(loaded.key.createdUnixMs).toBe(42);
  });

  it('honours an aborted signal before touching the disk', async () => {
    const dir = join(root, 'never');
    await expect(loadOrCreateVaultKey(dir, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'CancelledError' });
    await expect(fs.stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
