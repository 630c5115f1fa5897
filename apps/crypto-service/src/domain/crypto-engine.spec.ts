import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CancelledError, DataLossError, InvalidArgumentError, MAX_CHUNK_PLAINTEXT_BYTES, MAX_OBJECT_BYTES } from '@distri-vault/shared';
import { CryptoEngine, MAX_MANIFEST_PLAINTEXT_BYTES, MAX_SEAL_CHUNK_BYTES } from './crypto-engine';
import type { ChunkContext } from './envelope';
import { loadOrCreateVaultKey } from './vault-key';
import { FOLDER_A, FOLDER_B, makeTempDir, removeTempDir, seededBytes } from '../testing/fixtures';

const fileId = seededBytes('file-id', 16);
const ctx = (over: Partial<ChunkContext> = {}): ChunkContext => ({ folder: FOLDER_A, fileId, index: 3, last: false, ...over });
const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('CryptoEngine', () => {
  let root: string;
  let engine: CryptoEngine;
  let other: CryptoEngine;
  beforeAll(async () => {
    root = await makeTempDir();
    engine = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(join(root, 'one'))).key });
    other = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(join(root, 'two'))).key });
  });
  afterAll(async () => {
    await removeTempDir(root);
  });

  describe('data keys', () => {
    it('wraps a fresh 32-byte key into 61 bytes starting 0x01', async () => {
      const a = await engine.createDataKey(FOLDER_A);
      const b = await engine.createDataKey(FOLDER_A);
      expect(a.length).toBe(61);
      expect(a[0]).toBe(1);
      expect(a.equals(b)).toBe(false);
    });

    it('rejects a malformed folder', async () => {
      for (const folder of ['', 'A'.repeat(32), 'a'.repeat(31), 'a'.repeat(33), '../' + 'a'.repeat(29), '0'.repeat(32)]) {
        await expect(engine.createDataKey(folder)).rejects.toBeInstanceOf(InvalidArgumentError);
      }
    });
  });

  describe('chunks', () => {
    it.each([0, 1, 4095, 65536, MAX_CHUNK_PLAINTEXT_BYTES, MAX_SEAL_CHUNK_BYTES])('round-trips %i bytes', async (n) => {
      const key = await engine.createDataKey(FOLDER_A);
      const pt = seededBytes(`chunk-${n}`, n);
      const sealed = await engine.sealChunk(key, ctx(), pt);
      expect(sealed.ciphertext.length).toBe(n + 29);
      expect(sealed.ciphertext[0]).toBe(1);
      expect(sealed.id).toBe(sha256hex(sealed.ciphertext));
      expect(sealed.id).toMatch(/^[0-9a-f]{64}$/);
      expect((await engine.openChunk(key, ctx(), sealed.ciphertext)).equals(pt)).toBe(true);
    });

    it('rejects a chunk one byte over the limit', async () => {
      const key = await engine.createDataKey(FOLDER_A);
      await expect(engine.sealChunk(key, ctx(), Buffer.alloc(MAX_SEAL_CHUNK_BYTES + 1))).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(engine.openChunk(key, ctx(), Buffer.alloc(MAX_SEAL_CHUNK_BYTES + 30, 1))).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it('opens the extreme index and the last flag', async () => {
      const key = await engine.createDataKey(FOLDER_B);
      const c = ctx({ folder: FOLDER_B, index: 0xffffffff, last: true });
      const sealed = await engine.sealChunk(key, c, Buffer.from('end'));
      expect((await engine.openChunk(key, c, sealed.ciphertext)).toString()).toBe('end');
    });

    describe('authentication failures are DATA_LOSS', () => {
      let key: Buffer;
      let sealed: Buffer;
      const pt = seededBytes('victim', 1000);
      beforeAll(async () => {
        key = await engine.createDataKey(FOLDER_A);
        sealed = (await engine.sealChunk(key, ctx(), pt)).ciphertext;
      });

      it.each([
        ['a nonce byte', 1],
        ['the first ciphertext byte', 13],
        ['a middle ciphertext byte', 500],
        ['the last ciphertext byte', 13 + 999],
        ['a tag byte', 13 + 1000],
        ['the last tag byte', 13 + 1000 + 15],
      ])('a tampered byte: %s', async (_what, at) => {
        const bad = Buffer.from(sealed);
        bad[at] ^= 0x80;
        await expect(engine.openChunk(key, ctx(), bad)).rejects.toBeInstanceOf(DataLossError);
      });

      it.each<[string, Partial<ChunkContext>]>([
        ['another folder', { folder: FOLDER_B }],
        ['another file_id', { fileId: seededBytes('other-file', 16) }],
        ['another index', { index: 4 }],
        ['index 0', { index: 0 }],
        ['last set', { last: true }],
      ])('a wrong context: %s', async (_what, over) => {
        await expect(engine.openChunk(key, ctx(over), sealed)).rejects.toBeInstanceOf(DataLossError);
      });

      it('another data key of the same folder', async () => {
        const key2 = await engine.createDataKey(FOLDER_A);
        await expect(engine.openChunk(key2, ctx(), sealed)).rejects.toBeInstanceOf(DataLossError);
      });

      it('a tampered wrapped key', async () => {
        for (const at of [1, 20, 60]) {
          const bad = Buffer.from(key);
          bad[at] ^= 0x01;
          await expect(engine.openChunk(bad, ctx(), sealed)).rejects.toBeInstanceOf(DataLossError);
          await expect(engine.sealChunk(bad, ctx(), pt)).rejects.toBeInstanceOf(DataLossError);
        }
      });

      it('a key wrapped for another folder, even after it was cached for its own', async () => {
        const keyB = await engine.createDataKey(FOLDER_B);
        const sealedB = await engine.sealChunk(keyB, ctx({ folder: FOLDER_B }), pt);
        await expect(engine.openChunk(keyB, ctx({ folder: FOLDER_B }), sealedB.ciphertext)).resolves.toBeInstanceOf(Buffer);
        await expect(engine.sealChunk(keyB, ctx({ folder: FOLDER_A }), pt)).rejects.toBeInstanceOf(DataLossError);
        await expect(engine.openChunk(keyB, ctx({ folder: FOLDER_A }), sealedB.ciphertext)).rejects.toBeInstanceOf(DataLossError);
      });

      it("another vault's engine cannot open the chunk nor use the wrapped key", async () => {
        await expect(other.openChunk(key, ctx(), sealed)).rejects.toBeInstanceOf(DataLossError);
        await expect(other.sealChunk(key, ctx(), pt)).rejects.toBeInstanceOf(DataLossError);
      });
    });

    it('rejects malformed requests as INVALID_ARGUMENT', async () => {
      const key = await engine.createDataKey(FOLDER_A);
      const sealed = (await engine.sealChunk(key, ctx(), Buffer.from('x'))).ciphertext;
      const inval = (p: Promise<unknown>) => expect(p).rejects.toBeInstanceOf(InvalidArgumentError);
      for (const c of [ctx({ folder: 'nope' }), ctx({ fileId: Buffer.alloc(15) }), ctx({ fileId: Buffer.alloc(17) }), ctx({ fileId: Buffer.alloc(0) }), ctx({ index: -1 }), ctx({ index: 2 ** 32 }), ctx({ index: 1.5 })]) {
        await inval(engine.sealChunk(key, c, Buffer.from('x')));
        await inval(engine.openChunk(key, c, sealed));
      }
      await inval(engine.sealChunk(key, undefined as unknown as ChunkContext, Buffer.from('x')));
      for (const wk of [key.subarray(0, 60), Buffer.concat([key, Buffer.from([0])]), Buffer.alloc(0), Buffer.from([2, ...key.subarray(1)])]) {
        await inval(engine.sealChunk(wk, ctx(), Buffer.from('x')));
        await inval(engine.openChunk(wk, ctx(), sealed));
      }
      await inval(engine.openChunk(key, ctx(), sealed.subarray(0, 28)));
      const v9 = Buffer.from(sealed);
      v9[0] = 9;
      await expect(engine.openChunk(key, ctx(), v9)).rejects.toBeInstanceOf(DataLossError);
    });
  });

  describe('manifests', () => {
    it.each([0, 1, 100_000])('round-trips %i bytes', async (n) => {
      const pt = seededBytes(`manifest-${n}`, n);
      const sealed = await engine.sealManifest(FOLDER_A, pt);
      // Padded: 4-byte length + manifest, rounded up to a power of two of at least 1 KiB.
      expect(sealed.ciphertext.length).toBe(({ 0: 1024, 1: 1024, 100000: 131072 } as Record<number, number>)[n]! + 29);
      expect(sealed.ciphertext[0]).toBe(2);
      expect(sealed.id).toBe(sha256hex(sealed.ciphertext));
      expect((await engine.openManifest(FOLDER_A, sealed.ciphertext)).equals(pt)).toBe(true);
    });

    it('hides the manifest size within its power of two: a short and a long path look the same', async () => {
      const short = await engine.sealManifest(FOLDER_A, Buffer.from('{"path":"a"}'));
      const long = await engine.sealManifest(FOLDER_A, Buffer.from(`{"path":"${'x'.repeat(900)}"}`));
      expect(short.ciphertext.length).toBe(long.ciphertext.length);
      expect((await engine.sealManifest(FOLDER_A, Buffer.alloc(1020))).ciphertext.length).toBe(1024 + 29);
      expect((await engine.sealManifest(FOLDER_A, Buffer.alloc(1021))).ciphertext.length).toBe(2048 + 29);
    });

    it('accepts exactly MAX_OBJECT_BYTES - 33 and rejects one more', async () => {
      expect(MAX_MANIFEST_PLAINTEXT_BYTES).toBe(MAX_OBJECT_BYTES - 33);
      const pt = seededBytes('big-manifest', MAX_MANIFEST_PLAINTEXT_BYTES);
      const sealed = await engine.sealManifest(FOLDER_A, pt);
      expect(sealed.ciphertext.length).toBe(MAX_OBJECT_BYTES);
      expect((await engine.openManifest(FOLDER_A, sealed.ciphertext)).equals(pt)).toBe(true);
      await expect(engine.sealManifest(FOLDER_A, Buffer.alloc(MAX_MANIFEST_PLAINTEXT_BYTES + 1))).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(engine.openManifest(FOLDER_A, Buffer.concat([sealed.ciphertext, Buffer.from([0])]))).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it('detects tampering, another folder and another vault key as DATA_LOSS', async () => {
      const sealed = (await engine.sealManifest(FOLDER_A, seededBytes('m', 300))).ciphertext;
      for (const at of [1, 12, 13, 200, sealed.length - 16, sealed.length - 1]) {
        const bad = Buffer.from(sealed);
        bad[at] ^= 0x04;
        await expect(engine.openManifest(FOLDER_A, bad)).rejects.toBeInstanceOf(DataLossError);
      }
      await expect(engine.openManifest(FOLDER_B, sealed)).rejects.toBeInstanceOf(DataLossError);
      await expect(other.openManifest(FOLDER_A, sealed)).rejects.toBeInstanceOf(DataLossError);
    });

    it('does not confuse a wrapped key or chunk with a manifest', async () => {
      const wrapped = await engine.createDataKey(FOLDER_A);
      await expect(engine.openManifest(FOLDER_A, wrapped)).rejects.toBeInstanceOf(DataLossError);
    });

    it('rejects malformed requests as INVALID_ARGUMENT', async () => {
      await expect(engine.sealManifest('bad', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidArgumentError);
      const sealed = (await engine.sealManifest(FOLDER_A, Buffer.from('x'))).ciphertext;
      await expect(engine.openManifest('bad', sealed)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(engine.openManifest(FOLDER_A, sealed.subarray(0, 28))).rejects.toBeInstanceOf(InvalidArgumentError);
      const v0 = Buffer.from(sealed);
      v0[0] = 0;
      await expect(engine.openManifest(FOLDER_A, v0)).rejects.toBeInstanceOf(DataLossError);
    });
  });

  it('reports key info', async () => {
    const info = await engine.keyInfo();
    expect(info.formatVersion).toBe(1);
    expect(info.keyFingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(info.keyFingerprint).not.toBe((await other.keyInfo()).keyFingerprint);
    expect(info.createdUnixMs).toBeGreaterThan(0);
  });

  it('a reloaded key opens what the first load sealed', async () => {
    const dir = join(root, 'one');
    const key = await engine.createDataKey(FOLDER_A);
    const chunk = await engine.sealChunk(key, ctx(), Buffer.from('persist'));
    const manifest = await engine.sealManifest(FOLDER_A, Buffer.from('m'));
    const reloaded = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(dir)).key });
    expect((await reloaded.openChunk(key, ctx(), chunk.ciphertext)).toString()).toBe('persist');
    expect((await reloaded.openManifest(FOLDER_A, manifest.ciphertext)).toString()).toBe('m');
  });

  it('keeps the data-key cache bounded and still works past its size', async () => {
    const vaultKey = (await loadOrCreateVaultKey(join(root, 'one'))).key;
    const small = new CryptoEngine({ vaultKey }, { dataKeyCacheSize: 2 });
    const keys = await Promise.all([0, 1, 2, 3].map(() => small.createDataKey(FOLDER_A)));
    const sealed = [];
    for (const k of keys) sealed.push(await small.sealChunk(k, ctx(), Buffer.from('c')));
    expect(small.cachedDataKeys).toBe(2);
    for (let i = 0; i < keys.length; i++) expect((await small.openChunk(keys[i]!, ctx(), sealed[i]!.ciphertext)).toString()).toBe('c');
    expect(small.cachedDataKeys).toBe(2);
    const none = new CryptoEngine({ vaultKey }, { dataKeyCacheSize: 0 });
    expect((await none.openChunk(keys[0]!, ctx(), sealed[0]!.ciphertext)).toString()).toBe('c');
    expect(none.cachedDataKeys).toBe(0);
  });

  it('honours an aborted signal', async () => {
    const signal = AbortSignal.abort();
    await expect(engine.createDataKey(FOLDER_A, signal)).rejects.toBeInstanceOf(CancelledError);
    await expect(engine.sealManifest(FOLDER_A, Buffer.from('x'), signal)).rejects.toBeInstanceOf(CancelledError);
    await expect(engine.keyInfo(signal)).rejects.toBeInstanceOf(CancelledError);
  });
});
