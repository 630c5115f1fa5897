import { createSecretKey, randomBytes } from 'node:crypto';
import { DataLossError, InvalidArgumentError } from '@distri-vault/shared';
import {
  chunkAssociatedData,
  ENVELOPE_OVERHEAD,
  manifestAssociatedData,
  objectId,
  openEnvelope,
  sealEnvelope,
  wrapAssociatedData,
} from './envelope';
import { FOLDER_A, seededBytes } from '../testing/fixtures';

const key = createSecretKey(seededBytes('envelope-key', 32));
const ad = Buffer.from('some associated data');

describe('envelope v1', () => {
  it.each([0, 1, 4096, 1024 * 1024])('round-trips %i bytes with the documented layout', (n) => {
    const pt = seededBytes(`pt-${n}`, n);
    const env = sealEnvelope(key, ad, pt);
    expect(env.length).toBe(n + ENVELOPE_OVERHEAD);
    expect(env[0]).toBe(1);
    expect(openEnvelope(key, ad, env).equals(pt)).toBe(true);
  });

  it('uses a fresh nonce every time', () => {
    const pt = seededBytes('same', 100);
    const a = sealEnvelope(key, ad, pt);
    const b = sealEnvelope(key, ad, pt);
    expect(a.subarray(1, 13).equals(b.subarray(1, 13))).toBe(false);
    expect(a.equals(b)).toBe(false);
  });

  it('detects a flipped bit anywhere after the version byte', () => {
    const env = sealEnvelope(key, ad, seededBytes('tamper', 64));
    for (let i = 1; i < env.length; i++) {
      const bad = Buffer.from(env);
      bad[i] ^= 0x01;
      expect(() => openEnvelope(key, ad, bad)).toThrow(DataLossError);
    }
  });

  it('rejects wrong associated data, a wrong key, truncation and extension as data loss', () => {
    const env = sealEnvelope(key, ad, seededBytes('ctx', 64));
    expect(() => openEnvelope(key, Buffer.from('other'), env)).toThrow(DataLossError);
    expect(() => openEnvelope(createSecretKey(randomBytes(32)), ad, env)).toThrow(DataLossError);
    expect(() => openEnvelope(key, ad, env.subarray(0, env.length - 1))).toThrow(DataLossError);
    expect(() => openEnvelope(key, ad, Buffer.concat([env, Buffer.from([0])]))).toThrow(DataLossError);
  });

  it('rejects malformed envelopes as invalid arguments', () => {
    const env = sealEnvelope(key, ad, Buffer.alloc(0));
    expect(env.length).toBe(29);
    expect(() => openEnvelope(key, ad, env.subarray(0, 28))).toThrow(InvalidArgumentError);
    expect(() => openEnvelope(key, ad, Buffer.alloc(0))).toThrow(InvalidArgumentError);
    const v2 = Buffer.from(env);
    v2[0] = 2;
    expect(() => openEnvelope(key, ad, v2)).toThrow(DataLossError);
    expect(() => openEnvelope(key, ad, env, 'x', 28)).toThrow(InvalidArgumentError);
  });

  it('builds associated data exactly as specified', () => {
    const fileId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    expect(wrapAssociatedData(FOLDER_A).equals(Buffer.from(`distri-vault/wrap/v1\0${FOLDER_A}`))).toBe(true);
    expect(manifestAssociatedData(FOLDER_A).equals(Buffer.from(`distri-vault/manifest/v1\0${FOLDER_A}`))).toBe(true);
    const chunk = chunkAssociatedData({ folder: FOLDER_A, fileId, index: 0x01020304, last: true });
    const want = Buffer.concat([Buffer.from(`distri-vault/chunk/v1\0${FOLDER_A}\0`), fileId, Buffer.from([1, 2, 3, 4, 1])]);
    expect(chunk.equals(want)).toBe(true);
    expect(chunkAssociatedData({ folder: FOLDER_A, fileId, index: 0xffffffff, last: false }).subarray(-5)).toEqual(Buffer.from([255, 255, 255, 255, 0]));
  });

  it('names an object by the lowercase hex SHA-256 of its bytes', () => {
    expect(objectId(Buffer.from('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
