/**
 * Vault-key rotation without re-encrypting chunks, and retirement of an old key (crypto-shredding of
 * whatever only it wrapped), on real key directories.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { DataLossError, FailedPreconditionError, InvalidArgumentError } from '@distri-vault/shared';
import { CryptoEngine } from './crypto-engine';
import { exportRecoveryKey, loadKeyring, previousKeyFile, retireVaultKey, rotateVaultKey, VAULT_KEY_FILE } from './vault-key';
import { FOLDER_A, FOLDER_B, makeTempDir, removeTempDir, seededBytes } from '../testing/fixtures';

describe('vault key rotation', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  const engineOf = async (passphrase?: string) => {
    const ring = await loadKeyring(dir, { passphrase, scrypt: { N: 1024, r: 8, p: 1 } });
    return { ring, engine: new CryptoEngine({ vaultKey: ring.current.key, previousKeys: ring.previous }) };
  };
  const ctx = (fileId: Buffer, index = 0) => ({ folder: FOLDER_A, fileId, index, last: true });

  it.each([[undefined], ['a passphrase']])('re-wraps data keys under the new key; chunks stay byte for byte; retiring the old key shreds the rest (passphrase %s)', async (passphrase) => {
    const { ring: before, engine: e1 } = await engineOf(passphrase);
    const liveId = seededBytes('live', 16);
    const deletedId = seededBytes('deleted', 16);
    const liveKey = await e1.createDataKey(FOLDER_A);
    const deletedKey = await e1.createDataKey(FOLDER_A);
    const live = await e1.sealChunk(liveKey, ctx(liveId), Buffer.from('live version'));
    const deleted = await e1.sealChunk(deletedKey, ctx(deletedId), Buffer.from('deleted version'));
    const oldManifest = await e1.sealManifest(FOLDER_A, Buffer.from('old manifest'));
    const oldRecovery = await exportRecoveryKey(dir, passphrase);

    const rotated = await rotateVaultKey(dir, { passphrase, scrypt: { N: 1024, r: 8, p: 1 } });
    expect(rotated.previous).toBe(before.current.key.fingerprint);
    expect(rotated.current.key.fingerprint).not.toBe(rotated.previous);
    expect((await fs.readdir(dir)).sort()).toEqual([previousKeyFile(rotated.previous), VAULT_KEY_FILE].sort());
    expect(await exportRecoveryKey(dir, passphrase)).not.toBe(oldRecovery);

    // After a restart: the new key is current, the old one still opens what it wrapped.
    const { ring, engine: e2 } = await engineOf(passphrase);
    expect(ring.current.key.fingerprint).toBe(rotated.current.key.fingerprint);
    expect(e2.previousFingerprints).toEqual([rotated.previous]);
    expect((await e2.openChunk(deletedKey, ctx(deletedId), deleted.ciphertext)).toString()).toBe('deleted version');
    expect((await e2.openManifest(FOLDER_A, oldManifest.ciphertext)).toString()).toBe('old manifest');

    // The node re-wraps the live version's key (and reseals its manifest); the chunk is untouched.
    const rewrapped = await e2.rewrapDataKey(FOLDER_A, liveKey);
    expect(rewrapped).toHaveLength(61);
    expect(rewrapped.equals(liveKey)).toBe(false);
    const newManifest = await e2.sealManifest(FOLDER_A, Buffer.from('new manifest'));
    await expect(e2.rewrapDataKey(FOLDER_B, liveKey)).rejects.toBeInstanceOf(DataLossError);

    await retireVaultKey(dir, rotated.previous, { passphrase });
    expect(await fs.readdir(dir)).toEqual([VAULT_KEY_FILE]);
    const { engine: e3 } = await engineOf(passphrase);
    expect(e3.previousFingerprints).toEqual([]);
    expect((await e3.openChunk(rewrapped, ctx(liveId), live.ciphertext)).toString()).toBe('live version');
    expect((await e3.openManifest(FOLDER_A, newManifest.ciphertext)).toString()).toBe('new manifest');
    // Shredded: the deleted version's key and the old manifest were wrapped only by the retired key.
    await expect(e3.openChunk(deletedKey, ctx(deletedId), deleted.ciphertext)).rejects.toBeInstanceOf(DataLossError);
    await expect(e3.openChunk(liveKey, ctx(liveId), live.ciphertext)).rejects.toBeInstanceOf(DataLossError);
    await expect(e3.openManifest(FOLDER_A, oldManifest.ciphertext)).rejects.toBeInstanceOf(DataLossError);
  });

  it('forgets cached data keys of a retired key at once in a running engine', async () => {
    const { ring, engine } = await engineOf();
    const wrapped = await engine.createDataKey(FOLDER_A);
    const fileId = seededBytes('cached', 16);
    const sealed = await engine.sealChunk(wrapped, ctx(fileId), Buffer.from('x'));
    expect(engine.cachedDataKeys).toBe(1);
    await rotateVaultKey(dir);
    const after = await loadKeyring(dir);
    engine.setKeys({ vaultKey: after.current.key }); // the old key retired
    expect(engine.cachedDataKeys).toBe(0);
    await expect(engine.openChunk(wrapped, ctx(fileId), sealed.ciphertext)).rejects.toBeInstanceOf(DataLossError);
    expect(ring.current.key.fingerprint).not.toBe(after.current.key.fingerprint);
  });

  it('refuses to retire the current key, an unknown key or a malformed fingerprint', async () => {
    const { ring } = await engineOf();
    await expect(retireVaultKey(dir, ring.current.key.fingerprint)).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(retireVaultKey(dir, '0123456789abcdef')).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(retireVaultKey(dir, '../vault-key')).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await fs.readdir(dir)).toEqual([VAULT_KEY_FILE]);
  });

  it('survives a rotation interrupted after the old key was kept (both files hold the old key)', async () => {
    const { ring } = await engineOf();
    await fs.link(join(dir, VAULT_KEY_FILE), join(dir, previousKeyFile(ring.current.key.fingerprint)));
    await fs.writeFile(join(dir, 'vault-key.next.json'), 'half-written');
    const again = await engineOf();
    expect(again.ring.current.key.fingerprint).toBe(ring.current.key.fingerprint);
    expect(again.engine.previousFingerprints).toEqual([]);
    const rotated = await rotateVaultKey(dir);
    expect(rotated.previous).toBe(ring.current.key.fingerprint);
    expect((await fs.readdir(dir)).sort()).toEqual([previousKeyFile(rotated.previous), VAULT_KEY_FILE].sort());
  });
});
