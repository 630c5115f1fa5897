/**
 * Golden test vectors of format v1: fixed keys, nonces and plaintexts -> the exact bytes committed below.
 * If any of these fail, the on-disk format changed: stored data would no longer open. Do not update the
 * hex to make them pass; add a new format version instead.
 */
import { createSecretKey } from 'node:crypto';
import { DataLossError } from '@distri-vault/shared';
import { CryptoEngine } from './crypto-engine';
import { chunkAssociatedData, manifestAssociatedData, objectId, padManifest, paddedManifestAssociatedData, sealEnvelope, wrapAssociatedData } from './envelope';
import { VaultKey } from './vault-key';
import { FOLDER_A } from '../testing/fixtures';

const vaultRaw = () => Buffer.from(Array.from({ length: 32 }, (_, i) => 0x40 + i)); // 40 41 .. 5f
const dataKey = Buffer.from(Array.from({ length: 32 }, (_, i) => i)); // 00 01 .. 1f
const fileId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const chunkContext = { folder: FOLDER_A, fileId, index: 2, last: true };
const chunkPlaintext = Buffer.from('distri-vault golden chunk vector\n');
const manifestPlaintext = Buffer.from('{"path":"golden/vector.txt","version":1}');

const VECTORS = {
  fingerprint: 'b3843b13d779dc7b',
  chunk:
    '0100000002a0a1a2a3a4a5a6a720b948fcfbc896bc5e87e00bf16f49e60c7062551514e0715791502a5971bb8af701a22694455cb4480de31e75ba333c27',
  chunkId: '439b5f3328c07db47f925799fce40b99d9ccd9bffc9e275668ca7d18c3ea628e',
  wrappedKey:
    '01b0b1b2b3b4b5b6b7b8b9babb061f40016e2d6d8437f48f2232f582c9cc939922c9be203d5359ab8861165ec346f9778b0af223180a9ffa399dc22677',
  // Padded manifest (version 2): 1053 bytes; its first 48 bytes and its SHA-256.
  paddedManifestHead: '02d0d1d2d3d4d5d6d7d8d9dadb90e26c204ed1350666247f7653c939c0b01ecb5359c17821fe2f7ddb3fd3126ddfab9f',
  paddedManifestSha256: 'a9a43d7f8b27bb6b288a9c7829479dc53bb3a4d2b8e19bb5b4370dedab93e6f2',
  manifest:
    '01c0c1c2c3c4c5c6c7c8c9cacbac6f87c3905470fb508d57c615f28924b9cd25252bac426b92988817e3d993a81313ee968fb6c369dc3f8e058dd1874584d75518a6eb417d',
};

describe('format v1 golden vectors', () => {
  const vault = new VaultKey(vaultRaw(), 0);

  it('derives the documented fingerprint', () => {
    expect(vault.fingerprint).toBe(VECTORS.fingerprint);
  });

  it('seals a chunk to the committed bytes (data key 00..1f, nonce = index 2 | a0..a7)', () => {
    const env = sealEnvelope(createSecretKey(dataKey), chunkAssociatedData(chunkContext), chunkPlaintext, Buffer.from('00000002a0a1a2a3a4a5a6a7', 'hex'));
    expect(env.toString('hex')).toBe(VECTORS.chunk);
    expect(objectId(env)).toBe(VECTORS.chunkId);
  });

  it('wraps a data key to the committed bytes (vault key 40..5f, HKDF wrap sub-key)', () => {
    const env = sealEnvelope(vault.wrapKey, wrapAssociatedData(FOLDER_A), dataKey, Buffer.from('b0b1b2b3b4b5b6b7b8b9babb', 'hex'));
    expect(env.toString('hex')).toBe(VECTORS.wrappedKey);
  });

  it('seals a manifest to the committed bytes (HKDF manifest sub-key)', () => {
    const env = sealEnvelope(vault.manifestKey, manifestAssociatedData(FOLDER_A), manifestPlaintext, Buffer.from('c0c1c2c3c4c5c6c7c8c9cacb', 'hex'));
    expect(env.toString('hex')).toBe(VECTORS.manifest);
  });

  it('seals a padded manifest (version 2) to the committed bytes', async () => {
    const padded = padManifest(manifestPlaintext, 1 << 20);
    expect(padded).toHaveLength(1024);
    const env = sealEnvelope(vault.manifestKey, paddedManifestAssociatedData(FOLDER_A), padded, Buffer.from('d0d1d2d3d4d5d6d7d8d9dadb', 'hex'), 2);
    expect(env).toHaveLength(1053);
    expect(env.subarray(0, 48).toString('hex')).toBe(VECTORS.paddedManifestHead);
    expect(objectId(env)).toBe(VECTORS.paddedManifestSha256);
    const engine = new CryptoEngine({ vaultKey: vault });
    expect((await engine.openManifest(FOLDER_A, env)).equals(manifestPlaintext)).toBe(true);
    // Relabelled as the other version, it opens under neither.
    const relabelled = Buffer.from(env);
    relabelled[0] = 1;
    await expect(engine.openManifest(FOLDER_A, relabelled)).rejects.toThrow(DataLossError);
    const v1as2 = Buffer.from(VECTORS.manifest, 'hex');
    v1as2[0] = 2;
    await expect(engine.openManifest(FOLDER_A, v1as2)).rejects.toThrow(DataLossError);
  });

  it('opens the committed envelopes through the engine, and nothing else', async () => {
    const engine = new CryptoEngine({ vaultKey: vault });
    const wrapped = Buffer.from(VECTORS.wrappedKey, 'hex');
    expect((await engine.openChunk(wrapped, chunkContext, Buffer.from(VECTORS.chunk, 'hex'))).equals(chunkPlaintext)).toBe(true);
    expect((await engine.openManifest(FOLDER_A, Buffer.from(VECTORS.manifest, 'hex'))).equals(manifestPlaintext)).toBe(true);
    await expect(engine.openChunk(wrapped, { ...chunkContext, last: false }, Buffer.from(VECTORS.chunk, 'hex'))).rejects.toThrow(DataLossError);
  });

  it('writes chunk nonces as the big-endian index followed by random bytes', async () => {
    const engine = new CryptoEngine({ vaultKey: vault });
    const wrapped = Buffer.from(VECTORS.wrappedKey, 'hex');
    const nonces = new Set<string>();
    for (const index of [0, 1, 0x01020304, 0xffffffff]) {
      const { ciphertext } = await engine.sealChunk(wrapped, { ...chunkContext, index }, chunkPlaintext);
      expect(ciphertext.readUInt32BE(1)).toBe(index);
      nonces.add(ciphertext.subarray(1, 13).toString('hex'));
    }
    // Re-sealing the same index draws a new random tail.
    const again = await engine.sealChunk(wrapped, { ...chunkContext, index: 0 }, chunkPlaintext);
    nonces.add(again.ciphertext.subarray(1, 13).toString('hex'));
    expect(nonces.size).toBe(5);
  });
});
