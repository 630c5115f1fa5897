/**
 * Strict patterns for everything that ends up in a file-system path or a protocol frame.
 * Nothing that fails these checks may reach a disk.
 */
import { InvalidArgumentError } from './errors';
import { base32, base32Decode } from './encoding';

/** Lowercase hex SHA-256: the ID of every chunk and manifest. */
export const OBJECT_ID_PATTERN = /^[0-9a-f]{64}$/;

/**
 * A server ID: 32 characters of lowercase RFC 4648 base32 = 160 bits: 150 bits of SHA-256 over the node's
 * public key, then a 10-bit check over them (see `serverIdFromHash`). The pattern checks only the shape;
 * `hasValidCheck` also checks the check bits.
 */
export const SERVER_ID_PATTERN = /^[a-z2-7]{32}$/;

/** Largest file path accepted, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 1024;

/** True when `id` is a well-formed object ID. */
export function isObjectId(id: string): boolean {
  return OBJECT_ID_PATTERN.test(id);
}

/** True when `id` is a well-formed server ID. */
export function isServerId(id: string): boolean {
  return SERVER_ID_PATTERN.test(id);
}

/** Throws InvalidArgumentError unless `id` is a well-formed object ID. */
export function assertObjectId(id: string): string {
  if (!isObjectId(id)) throw new InvalidArgumentError(`invalid object ID ${JSON.stringify(id.slice(0, 80))}: want 64 lowercase hex characters`);
  return id;
}

/** Throws InvalidArgumentError unless `id` is a well-formed server ID. */
export function assertServerId(id: string): string {
  if (!isServerId(id)) throw new InvalidArgumentError(`invalid server ID ${JSON.stringify(id.slice(0, 80))}: want 32 base32 characters`);
  return id;
}

/** Bits of a server ID that come from the key hash; the remaining 10 are the check. */
export const SERVER_ID_HASH_BITS = 150;
/** CRC-10 generator x^10+x^9+x^5+x^4+x+1 (CRC-10/ATM), without the x^10 term. */
const CRC10_POLY = 0x233;

/**
 * CRC-10 (CRC-10/ATM polynomial, init 0, MSB first, no reflection, no final XOR) over the first `nbits`
 * bits of `bytes`. Any error confined to 10 consecutive bits changes it, so a server ID with one wrong
 * character (5 bits) or two neighbouring characters swapped (10 bits) never passes the check.
 */
function crc10(bytes: Uint8Array, nbits: number): number {
  let crc = 0;
  for (let i = 0; i < nbits; i++) {
    const bit = (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
    const top = (crc >> 9) & 1;
    crc = (crc << 1) & 0x3ff;
    if (top ^ bit) crc ^= CRC10_POLY;
  }
  return crc;
}

/**
 * The server ID for a key hash (SHA-256 of the public key, at least 19 bytes): its first 150 bits followed
 * by their CRC-10, as 32 base32 characters.
 */
export function serverIdFromHash(hash: Uint8Array): string {
  if (hash.length < 19) throw new InvalidArgumentError('serverIdFromHash: want at least 19 bytes of hash');
  const id = Buffer.alloc(20);
  id.set(hash.subarray(0, 18), 0);
  id[18] = hash[18]! & 0xfc; // the top 6 bits: 18*8 + 6 = 150
  const check = crc10(id, SERVER_ID_HASH_BITS);
  id[18] |= check >> 8;
  id[19] = check & 0xff;
  return base32(id);
}

/** True when `id` is a well-formed server ID whose check bits match (no typo). */
export function hasValidCheck(id: string): boolean {
  if (!isServerId(id)) return false;
  const bytes = base32Decode(id);
  if (!bytes || bytes.length !== 20) return false;
  return crc10(bytes, SERVER_ID_HASH_BITS) === (((bytes[18]! & 0x03) << 8) | bytes[19]!);
}

/**
 * Throws InvalidArgumentError unless `id` is a well-formed server ID with a valid check: for every place a
 * human types or pastes a server ID, and for server IDs peers claim. (`assertServerId` checks the shape only.)
 */
export function assertServerIdChecked(id: string): string {
  assertServerId(id);
  if (!hasValidCheck(id)) throw new InvalidArgumentError(`server ID ${id} has a typo (its check characters do not match); copy it again`);
  return id;
}

/**
 * Validates a file path inside a folder and returns it unchanged.
 * Accepted: '/'-separated, non-empty segments, none of them '.' or '..', no NUL or other control
 * characters, no backslash, no leading '/', at most MAX_PATH_BYTES.
 */
export function assertFilePath(path: string): string {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`invalid path: ${why}`);
  };
  if (typeof path !== 'string' || path.length === 0) bad('empty');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) bad(`longer than ${MAX_PATH_BYTES} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) bad('contains a control character');
  if (path.includes('\\')) bad('contains a backslash');
  if (path.startsWith('/')) bad('absolute paths are not allowed');
  for (const segment of path.split('/')) {
    if (segment === '') bad('empty segment');
    if (segment === '.' || segment === '..') bad(`'${segment}' segment`);
  }
  return path;
}
