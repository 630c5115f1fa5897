/**
 * The tamper suite: a reader that opens a file's chunks by their position in the manifest (index i,
 * last = i === n - 1) gets DATA_LOSS, and never any plaintext, for every way a peer could alter what it
 * stores: flipped bits in header, nonce, ciphertext or tag; chunks swapped between two files or two
 * versions of one file; reordered chunks; a dropped last chunk; a data key or manifest moved to another
 * folder or opened by another node's vault key. Replay of an old manifest (sealed under a key retired since,
 * of another folder or node) is in ../grpc/crypto.grpc.spec.ts, at the service, and in the node's
 * apps/peer-node/src/domain/vault-replay.spec.ts.
 */
import { join } from 'node:path';
import { DataLossError } from '@distri-vault/shared';
import { CryptoEngine } from './crypto-engine';
import { loadOrCreateVaultKey } from './vault-key';
import { FOLDER_A, FOLDER_B, makeTempDir, removeTempDir, seededBytes } from '../testing/fixtures';

interface SealedFile {
  wrappedKey: Buffer;
  fileId: Buffer;
  chunks: Buffer[];
  plain: Buffer[];
}

const CHUNK = 4096;

async function sealFile(engine: CryptoEngine, seed: string, n: number): Promise<SealedFile> {
  const wrappedKey = await engine.createDataKey(FOLDER_A);
  const fileId = seededBytes(`${seed}-id`, 16);
  const plain: Buffer[] = [];
  const chunks: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    plain.push(seededBytes(`${seed}-${i}`, CHUNK));
    chunks.push((await engine.sealChunk(wrappedKey, { folder: FOLDER_A, fileId, index: i, last: i === n - 1 }, plain[i]!)).ciphertext);
  }
  return { wrappedKey, fileId, chunks, plain };
}

/** Opens `chunks` as the reader does: position i, last when i is the final position. Returns every plaintext or throws. */
async function openFile(engine: CryptoEngine, f: { wrappedKey: Buffer; fileId: Buffer }, chunks: Buffer[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < chunks.length; i++) {
    out.push(await engine.openChunk(f.wrappedKey, { folder: FOLDER_A, fileId: f.fileId, index: i, last: i === chunks.length - 1 }, chunks[i]!));
  }
  return out;
}

describe('tamper suite', () => {
  let root: string;
  let engine: CryptoEngine;
  let otherNode: CryptoEngine;
  let fileA: SealedFile;
  let fileB: SealedFile;
  let fileAv2: SealedFile;

  beforeAll(async () => {
    root = await makeTempDir();
    engine = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(join(root, 'node'))).key });
    otherNode = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(join(root, 'other'))).key });
    fileA = await sealFile(engine, 'file-a', 3);
    fileB = await sealFile(engine, 'file-b', 3);
    fileAv2 = await sealFile(engine, 'file-a', 3); // same content, next version: new data key and file_id
  });
  afterAll(async () => {
    await removeTempDir(root);
  });

  const lost = (p: Promise<unknown>) => expect(p).rejects.toBeInstanceOf(DataLossError);

  it('opens the untouched files (the baseline every case below departs from)', async () => {
    expect(await openFile(engine, fileA, fileA.chunks)).toEqual(fileA.plain);
    expect(await openFile(engine, fileAv2, fileAv2.chunks)).toEqual(fileAv2.plain);
  });

  it.each([
    ['version byte', 0],
    ['nonce (index part)', 1],
    ['nonce (random part)', 12],
    ['first ciphertext byte', 13],
    ['last ciphertext byte', 13 + CHUNK - 1],
    ['first tag byte', 13 + CHUNK],
    ['last tag byte', 13 + CHUNK + 15],
  ])('rejects a flipped bit in the %s', async (_what, at) => {
    for (const bit of [0x01, 0x80]) {
      const bad = Buffer.from(fileA.chunks[1]!);
      bad[at]! ^= bit;
      await lost(openFile(engine, fileA, [fileA.chunks[0]!, bad, fileA.chunks[2]!]));
    }
  });

  it('rejects a chunk swapped in from another file', async () => {
    await lost(openFile(engine, fileA, [fileA.chunks[0]!, fileB.chunks[1]!, fileA.chunks[2]!]));
    // Even with the other file's data key: its file_id differs.
    await lost(engine.openChunk(fileB.wrappedKey, { folder: FOLDER_A, fileId: fileA.fileId, index: 1, last: false }, fileB.chunks[1]!));
  });

  it('rejects a chunk swapped in from another version of the same file (same plaintext)', async () => {
    expect(fileAv2.plain[1]).toEqual(fileA.plain[1]);
    await lost(openFile(engine, fileAv2, [fileAv2.chunks[0]!, fileA.chunks[1]!, fileAv2.chunks[2]!]));
    await lost(engine.openChunk(fileAv2.wrappedKey, { folder: FOLDER_A, fileId: fileA.fileId, index: 1, last: false }, fileA.chunks[1]!));
  });

  it('rejects reordered chunks', async () => {
    await lost(openFile(engine, fileA, [fileA.chunks[1]!, fileA.chunks[0]!, fileA.chunks[2]!]));
    await lost(openFile(engine, fileA, [fileA.chunks[0]!, fileA.chunks[2]!, fileA.chunks[1]!]));
  });

  it('rejects a file whose last chunk was dropped, or extended past its last chunk', async () => {
    await lost(openFile(engine, fileA, fileA.chunks.slice(0, 2)));
    await lost(openFile(engine, fileA, [...fileA.chunks, fileA.chunks[2]!]));
  });

  it('rejects a data key or manifest moved to another folder, or opened by another node', async () => {
    const ctx = { folder: FOLDER_B, fileId: fileA.fileId, index: 0, last: false };
    await lost(engine.openChunk(fileA.wrappedKey, ctx, fileA.chunks[0]!));
    await lost(otherNode.openChunk(fileA.wrappedKey, { ...ctx, folder: FOLDER_A }, fileA.chunks[0]!));
    const manifest = (await engine.sealManifest(FOLDER_A, Buffer.from('{"path":"secret"}'))).ciphertext;
    await lost(engine.openManifest(FOLDER_B, manifest));
    await lost(otherNode.openManifest(FOLDER_A, manifest));
    for (const at of [0, 1, 13, manifest.length - 1]) {
      const bad = Buffer.from(manifest);
      bad[at]! ^= 0x04;
      await lost(engine.openManifest(FOLDER_A, bad));
    }
  });
});
