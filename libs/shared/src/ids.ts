/**
 * Strict patterns for everything that ends up in a file-system path or a protocol frame.
 * Nothing that fails these checks may reach a disk.
 */
import { InvalidArgumentError } from './errors';

/** Lowercase hex SHA-256: the ID of every chunk and manifest. */
export const OBJECT_ID_PATTERN = /^[0-9a-f]{64}$/;

/** A server ID: 32 characters of lowercase RFC 4648 base32 (160 bits of SHA-256 over the public key). */
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
