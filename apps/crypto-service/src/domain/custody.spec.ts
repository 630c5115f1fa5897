/**
 * Key custody: recovery-key export and import (typos caught by the check), a node's key restored on an
 * empty directory opening what the old one sealed, and passphrase protection of the key file (scrypt).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { DataLossError } from '@distri-vault/shared';
import { CryptoEngine } from './crypto-engine';
import {
  DEFAULT_SCRYPT,
  decodeRecoveryKey,
  encodeRecoveryKey,
  exportRecoveryKey,
  importRecoveryKey,
  loadOrCreateVaultKey,
  readRawVaultKey,
  RecoveryKeyError,
  VAULT_KEY_FILE,
  VaultKeyFileError,
  VaultKeyPassphraseError,
} from './vault-key';
import { FOLDER_A, makeTempDir, removeTempDir, seededBytes } from '../testing/fixtures';

// Cheap scrypt for tests (the stored parameters are what the loader uses, so any cost works).
const FAST = { N: 1024, r: 8, p: 1 };
const RECOVERY_RE = /^DVRK1(-[A-Z2-7]{4}){14}$/;

describe('recovery key', () => {
  it('encodes the golden vector (key 40..5f) exactly', () => {
    const raw = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x40 + i));
    const text = encodeRecoveryKey(raw);
    expect(text).toBe('DVRK1-IBAU-EQ2E-IVDE-OSCJ-JJFU-YTKO-J5IF-CUST-KRKV-MV2Y-LFNF-WXC5-LZPT-XJTS');
    expect(decodeRecoveryKey(text).equals(raw)).toBe(true);
    // Case, spaces and dashes do not matter when typing it back.
    expect(decodeRecoveryKey(` ${text.toLowerCase().replace(/-/g, ' ')}\n`).equals(raw)).toBe(true);
  });

  it('catches every single-character typo, and malformed input, with a clear error', () => {
    const text = encodeRecoveryKey(seededBytes('rk', 32));
    const body = text.slice(6);
    let caught = 0;
    for (let i = 0; i < body.length; i++) {
      if (body[i] === '-') continue;
      const typo = body[i] === 'A' ? 'B' : 'A';
      const bad = `DVRK1-${body.slice(0, i)}${typo}${body.slice(i + 1)}`;
      expect(() => decodeRecoveryKey(bad)).toThrow(/mistyped/);
      caught++;
    }
    expect(caught).toBe(56);
    expect(() => decodeRecoveryKey(text.slice(0, -1))).toThrow(RecoveryKeyError);
    expect(() => decodeRecoveryKey(`${text}A`)).toThrow(/characters after the prefix/);
    expect(() => decodeRecoveryKey(text.replace('DVRK1', 'DVRK2'))).toThrow(/must start with DVRK1-/);
    expect(() => decodeRecoveryKey(`${text.slice(0, -1)}1`)).toThrow(/invalid character/);
    expect(() => decodeRecoveryKey('')).toThrow(RecoveryKeyError);
  });
});

describe('key custody on disk', () => {
  let root: string;
  beforeEach(async () => {
    root = await makeTempDir();
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  const ctx = { folder: FOLDER_A, fileId: seededBytes('custody-file', 16), index: 0, last: true };

  it('exports, wipes, imports on a new directory and decrypts what the old key sealed', async () => {
    const oldDir = join(root, 'old');
    const original = await loadOrCreateVaultKey(oldDir);
    const engine = new CryptoEngine({ vaultKey: original.key });
    const wrapped = await engine.createDataKey(FOLDER_A);
    const sealed = await engine.sealChunk(wrapped, ctx, Buffer.from('restored on a new machine'));
    const manifest = await engine.sealManifest(FOLDER_A, Buffer.from('{"path":"a"}'));

    const recovery = await exportRecoveryKey(oldDir);
    expect(recovery).toMatch(RECOVERY_RE);
    const onDisk = JSON.parse(await fs.readFile(join(oldDir, VAULT_KEY_FILE), 'utf8'));
    expect(decodeRecoveryKey(recovery).toString('base64')).toBe(onDisk.key);
    await fs.rm(oldDir, { recursive: true });

    const newDir = join(root, 'new', 'keys');
    const imported = await importRecoveryKey(newDir, `${recovery}\n`, { now: () => 5 });
    expect(imported).toMatchObject({ created: true, protected: false, path: join(newDir, VAULT_KEY_FILE) });
    expect(imported.key.fingerprint).toBe(original.key.fingerprint);
    expect((await fs.stat(imported.path)).mode & 0o777).toBe(0o600);
    const restored = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(newDir)).key });
    expect((await restored.openChunk(wrapped, ctx, sealed.ciphertext)).toString()).toBe('restored on a new machine');
    expect((await restored.openManifest(FOLDER_A, manifest.ciphertext)).toString()).toBe('{"path":"a"}');
  });

  it('never replaces an existing key file on import', async () => {
    const dir = join(root, 'keys');
    const existing = await loadOrCreateVaultKey(dir);
    const before = await fs.readFile(join(dir, VAULT_KEY_FILE), 'utf8');
    await expect(importRecoveryKey(dir, encodeRecoveryKey(seededBytes('other', 32)))).rejects.toThrow(/already exists/);
    expect(await fs.readFile(join(dir, VAULT_KEY_FILE), 'utf8')).toBe(before);
    expect((await loadOrCreateVaultKey(dir)).key.fingerprint).toBe(existing.key.fingerprint);
  });

  it('a different (well-formed) recovery key imports a key that opens nothing: DATA_LOSS', async () => {
    const original = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(join(root, 'a'))).key });
    const wrapped = await original.createDataKey(FOLDER_A);
    const sealed = await original.sealChunk(wrapped, ctx, Buffer.from('x'));
    const manifest = await original.sealManifest(FOLDER_A, Buffer.from('m'));
    const wrong = await importRecoveryKey(join(root, 'b'), encodeRecoveryKey(seededBytes('wrong', 32)));
    const engine = new CryptoEngine({ vaultKey: wrong.key });
    await expect(engine.openChunk(wrapped, ctx, sealed.ciphertext)).rejects.toBeInstanceOf(DataLossError);
    await expect(engine.openManifest(FOLDER_A, manifest.ciphertext)).rejects.toBeInstanceOf(DataLossError);
  });

  it('protects a new key file with a passphrase (scrypt, parameters stored) and opens it only with it', async () => {
    const dir = join(root, 'protected');
    const created = await loadOrCreateVaultKey(dir, { passphrase: 'correct horse battery staple', scrypt: FAST, now: () => 7 });
    expect(created).toMatchObject({ created: true, protected: true });
    const file = JSON.parse(await fs.readFile(created.path, 'utf8'));
    expect(Object.keys(file).sort()).toEqual(['createdUnixMs', 'fingerprint', 'kdf', 'sealedKey', 'version']);
    expect(file).toMatchObject({ version: 2, createdUnixMs: 7, fingerprint: created.key.fingerprint, kdf: { name: 'scrypt', ...FAST } });
    expect(Buffer.from(file.kdf.salt, 'base64')).toHaveLength(16);
    expect(Buffer.from(file.sealedKey, 'base64')).toHaveLength(61);
    const { raw } = await readRawVaultKey(dir, 'correct horse battery staple');
    const text = await fs.readFile(created.path);
    expect(text.includes(raw)).toBe(false);
    expect(text.includes(Buffer.from(raw.toString('base64')))).toBe(false);
    expect(text.includes(Buffer.from(raw.toString('hex')))).toBe(false);

    const again = await loadOrCreateVaultKey(dir, { passphrase: 'correct horse battery staple' });
    expect(again).toMatchObject({ created: false, protected: true });
    expect(again.key.fingerprint).toBe(created.key.fingerprint);
    await expect(loadOrCreateVaultKey(dir, { passphrase: 'correct horse battery stapel' })).rejects.toThrow(VaultKeyPassphraseError);
    await expect(loadOrCreateVaultKey(dir, { passphrase: 'correct horse battery stapel' })).rejects.toThrow(/wrong passphrase for vault key file/);
    await expect(loadOrCreateVaultKey(dir)).rejects.toThrow(/is passphrase-protected/);
    await expect(exportRecoveryKey(dir, 'nope')).rejects.toThrow(VaultKeyPassphraseError);
    expect(await exportRecoveryKey(dir, 'correct horse battery staple')).toBe(encodeRecoveryKey(raw));
    // A failed attempt leaves the file as it was.
    expect((await fs.readFile(created.path)).equals(text)).toBe(true);
    raw.fill(0);
  });

  it('uses the default scrypt cost (N=2^17, r=8, p=1) unless told otherwise, and imports under a passphrase', async () => {
    expect(DEFAULT_SCRYPT).toEqual({ N: 131072, r: 8, p: 1 });
    const recovery = encodeRecoveryKey(seededBytes('import-protected', 32));
    const dir = join(root, 'imp');
    const imported = await importRecoveryKey(dir, recovery, { passphrase: 'pw' });
    expect(imported.protected).toBe(true);
    expect(JSON.parse(await fs.readFile(imported.path, 'utf8')).kdf).toMatchObject(DEFAULT_SCRYPT);
    expect(await exportRecoveryKey(dir, 'pw')).toBe(recovery);
  }, 60_000); // three scrypt runs at 128 MiB each: seconds on a loaded machine

  it.each([
    ['bad kdf name', { kdf: { name: 'pbkdf2' } }],
    ['N not a power of two', { kdf: { name: 'scrypt', N: 1000, r: 8, p: 1, salt: 'AAAAAAAAAAAAAAAAAAAAAA==' } }],
    ['short salt', { kdf: { name: 'scrypt', N: 1024, r: 8, p: 1, salt: 'AAAA' } }],
    ['short sealedKey', { kdf: { name: 'scrypt', N: 1024, r: 8, p: 1, salt: 'AAAAAAAAAAAAAAAAAAAAAA==' }, sealedKey: 'AAAA' }],
  ])('refuses a protected key file with %s', async (_what, body) => {
    await fs.writeFile(join(root, VAULT_KEY_FILE), JSON.stringify({ version: 2, createdUnixMs: 1, ...body }));
    await expect(loadOrCreateVaultKey(root, { passphrase: 'pw' })).rejects.toBeInstanceOf(VaultKeyFileError);
  });
});
