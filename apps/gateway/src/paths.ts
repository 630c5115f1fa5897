/**
 * File paths and query values taken from URLs. Everything is validated here, before anything reaches
 * the node.
 */
import { assertFilePath, InvalidArgumentError } from '@distri-vault/shared';

/** URL prefix of the file routes. */
export const FILES_PREFIX = '/v1/files/';
/** URL prefix of the version routes. */
export const VERSIONS_PREFIX = '/v1/versions/';

function decodeSegment(segment: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    throw new InvalidArgumentError('invalid path: bad percent-encoding');
  }
  // An encoded '/' would let two different URLs name the same file and hide a segment from checks
  // done on the raw URL by proxies in front of us.
  if (decoded.includes('/')) throw new InvalidArgumentError("invalid path: encoded '/' inside a segment");
  return decoded;
}

/**
 * The file path named by a raw request URL (`<prefix><path>[?query]`, prefix `/v1/files/` by default): each '/'-separated segment
 * percent-decoded, then checked with assertFilePath. Throws InvalidArgumentError for a bad escape,
 * an empty, '.' or '..' segment (including a trailing slash), control characters, backslashes.
 */
export function filePathFromUrl(url: string, prefix = FILES_PREFIX): string {
  const q = url.search(/[?#]/);
  const pathname = q === -1 ? url : url.slice(0, q);
  if (!pathname.startsWith(prefix)) throw new InvalidArgumentError('invalid path: empty');
  const raw = pathname.slice(prefix.length);
  return assertFilePath(raw.split('/').map(decodeSegment).join('/'));
}

/** The `version` query value: absent, or a positive integer. */
export function parseVersion(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,15}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError('invalid version: want a positive integer');
  }
  return Number(value);
}

/** The `prefix` (or `after`) query value: absent (empty) or one string. */
export function parsePrefix(value: unknown, name = 'prefix'): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new InvalidArgumentError(`invalid ${name}: give it once`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new InvalidArgumentError(`invalid ${name}: contains a control character`);
  return value;
}

/** Files per listing page when `limit` is not given, and the most one page may hold. */
export const DEFAULT_PAGE = 1000;
export const MAX_PAGE = 10000;

/** The `limit` query value: absent (DEFAULT_PAGE) or 1..MAX_PAGE. */
export function parseLimit(value: unknown): number {
  if (value === undefined) return DEFAULT_PAGE;
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,4}$/.test(value) || Number(value) > MAX_PAGE) {
    throw new InvalidArgumentError(`invalid limit: want 1-${MAX_PAGE}`);
  }
  return Number(value);
}

/** A Content-Length header as the upload's expected size, when present. */
export function parseContentLength(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError('invalid Content-Length');
  return Number(value);
}
