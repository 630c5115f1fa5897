import { createHash, randomBytes } from 'node:crypto';
import { base32, base32Decode } from './encoding';
import { assertServerId, assertServerIdChecked, hasValidCheck, isServerId, serverIdFromHash } from './ids';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const sha = (b: Buffer) => createHash('sha256').update(b).digest();

describe('server IDs with a check', () => {
  // Golden vectors, cross-checked with an independent Python implementation (CRC-10/ATM over 150 bits).
  it.each([
    ['SHA-256 of 32 zero bytes', sha(Buffer.alloc(32, 0)), 'mzuhvlpymk6xo3epygfy5h4oeaejofzi'],
    ['SHA-256 of bytes 0..31', sha(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 'mmg42klgyqzwneiskrelxms3j72bfjcw'],
    ['an all-zero hash', Buffer.alloc(32, 0), 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
    ['an all-ones hash', Buffer.alloc(32, 0xff), '777777777777777777777777777777vb'],
  ])('golden vector: %s', (_name, hash, id) => {
    expect(serverIdFromHash(hash)).toBe(id);
    expect(isServerId(id)).toBe(true);
    expect(hasValidCheck(id)).toBe(true);
  });

  it('keeps the first 150 bits of the hash and differs from the unchecked derivation only in the check', () => {
    const h = sha(Buffer.from('key'));
    const id = serverIdFromHash(h);
    const old = base32(h.subarray(0, 20));
    expect(id.slice(0, 30)).toBe(old.slice(0, 30)); // 30 characters = 150 bits
  });

  it('catches every single wrong character and every swap of neighbours', () => {
    for (let n = 0; n < 20; n++) {
      const id = serverIdFromHash(randomBytes(32));
      for (let i = 0; i < 32; i++) {
        for (const ch of ALPHABET) if (ch !== id[i]) expect(hasValidCheck(id.slice(0, i) + ch + id.slice(i + 1))).toBe(false);
        if (i < 31 && id[i] !== id[i + 1]) expect(hasValidCheck(id.slice(0, i) + id[i + 1] + id[i] + id.slice(i + 2))).toBe(false);
      }
    }
  });

  it('assertServerIdChecked reports a typo; assertServerId checks the shape only', () => {
    const id = serverIdFromHash(sha(Buffer.from('k')));
    const typo = id.slice(0, 5) + (id[5] === 'a' ? 'b' : 'a') + id.slice(6);
    expect(assertServerIdChecked(id)).toBe(id);
    expect(() => assertServerIdChecked(typo)).toThrow(/server ID .* has a typo/);
    expect(() => assertServerIdChecked(typo)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError' }));
    expect(() => assertServerIdChecked('ABC')).toThrow(/invalid server ID/);
    expect(assertServerId(typo)).toBe(typo);
    expect(assertServerId('a'.repeat(32))).toBe('a'.repeat(32));
    expect(hasValidCheck('a'.repeat(31) + 'b')).toBe(false);
  });

  it('base32Decode inverts base32 and refuses non-canonical text', () => {
    for (const len of [0, 1, 5, 19, 20, 32]) {
      const b = randomBytes(len);
      expect(base32Decode(base32(b))).toEqual(b);
    }
    expect(base32Decode('A')).toBeNull();
    expect(base32Decode('ab')).toBeNull(); // 'b' leaves non-zero padding bits
  });
});
