/**
 * Custody of one node's vault key: 32 random bytes in `<dir>/vault-key.json`, created atomically on
 * first start and loaded afterwards. Only sub-keys derived with HKDF-SHA256 are ever used for
 * encryption; the raw key serves for derivation and the public fingerprint, then is wiped from memory.
 */
import { createHash, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { constants as fsc, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CancelledError, FailedPreconditionError } from '@distri-vault/shared';

/** Name of the key file inside the key directory. */
export const VAULT_KEY_FILE = 'vault-key.json';
/** Version of the key file's JSON layout. */
export const VAULT_KEY_FILE_VERSION = 1;
/** Bytes of the vault key. */
export const VAULT_KEY_BYTES = 32;
/** HKDF info of the key that wraps data keys. */
export const WRAP_KEY_INFO = 'distri-vault/wrap/v1';
/** HKDF info of the key that seals manifests. */
export const MANIFEST_KEY_INFO = 'distri-vault/manifest/v1';
/** Prefix hashed before the key to make its fingerprint. */
export const FINGERPRINT_PREFIX = 'distri-vault/fingerprint/v1\0';

/** The key file exists but cannot be used (bad JSON, wrong version, wrong key length...). It is never overwritten. */
export class VaultKeyFileError extends FailedPreconditionError {
  /** Path of the offending file. */
  readonly path: string;
  constructor(path: string, why: string, options?: { cause?: unknown }) {
    super(`vault key file ${path} is unusable: ${why}; it was left untouched (restore it from backup or move it away to create a new key)`, options);
    this.name = 'VaultKeyFileError';
    this.path = path;
  }
}

/** Contents of vault-key.json. */
export interface VaultKeyFile {
  /** Layout version: 1. */
  version: number;
  /** The 32-byte key, standard base64. */
  key: string;
  /** When the key was created, Unix milliseconds. */
  createdUnixMs: number;
}

/** The derived keys and public facts of a vault key. Holds no copy of the raw key. */
export class VaultKey {
  /** Wraps per-version data keys (HKDF info "distri-vault/wrap/v1"). */
  readonly wrapKey: KeyObject;
  /** Seals manifests (HKDF info "distri-vault/manifest/v1"). */
  readonly manifestKey: KeyObject;
  /** First 16 hex characters of SHA-256("distri-vault/fingerprint/v1\0" + key). */
  readonly fingerprint: string;
  /** When the key was created, Unix milliseconds. */
  readonly createdUnixMs: number;

  /** Derives everything from `raw` (32 bytes), then zero-fills `raw`. */
  constructor(raw: Buffer, createdUnixMs: number) {
    if (raw.length !== VAULT_KEY_BYTES) throw new RangeError(`vault key must be ${VAULT_KEY_BYTES} bytes`);
    this.wrapKey = deriveKey(raw, WRAP_KEY_INFO);
    this.manifestKey = deriveKey(raw, MANIFEST_KEY_INFO);
    this.fingerprint = fingerprintOf(raw);
    this.createdUnixMs = createdUnixMs;
    raw.fill(0);
  }
}

/** HKDF-SHA256 with an empty salt (the input is already uniformly random), 32 bytes out. */
export function deriveKey(raw: Uint8Array, info: string): KeyObject {
  return createSecretKey(Buffer.from(hkdfSync('sha256', raw, Buffer.alloc(0), Buffer.from(info, 'utf8'), 32)));
}

/** The public fingerprint of a raw vault key. */
export function fingerprintOf(raw: Uint8Array): string {
  return createHash('sha256').update(FINGERPRINT_PREFIX, 'utf8').update(raw).digest('hex').slice(0, 16);
}

/** Options of loadOrCreateVaultKey. */
export interface VaultKeyOptions {
  /** Aborts the load; the key file is either fully created or not at all. */
  signal?: AbortSignal;
  /** Clock for createdUnixMs of a new key (tests). Default Date.now. */
  now?: () => number;
}

/** What loadOrCreateVaultKey found. */
export interface LoadedVaultKey {
  /** The derived keys. */
  key: VaultKey;
  /** True when this call created the key file. */
  created: boolean;
  /** Path of the key file. */
  path: string;
}

/**
 * Loads the vault key from `<dir>/vault-key.json`, creating the directory (0700) and the file (0600)
 * with a fresh random key when the file does not exist. A file that exists but is malformed raises
 * VaultKeyFileError and is never touched.
 */
export async function loadOrCreateVaultKey(dir: string, opts: VaultKeyOptions = {}): Promise<LoadedVaultKey> {
  const path = join(dir, VAULT_KEY_FILE);
  throwIfAborted(opts.signal);
  const existing = await readKeyFile(path);
  if (existing) return { key: existing, created: false, path };

  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  throwIfAborted(opts.signal);
  const raw = randomBytes(VAULT_KEY_BYTES);
  const body: VaultKeyFile = { version: VAULT_KEY_FILE_VERSION, key: raw.toString('base64'), createdUnixMs: (opts.now ?? Date.now)() };
  const created = await publishAtomically(dir, path, Buffer.from(JSON.stringify(body) + '\n', 'utf8'));
  raw.fill(0);
  if (!created) {
    // Another process created the key between our read and our publish: its key wins, ours is discarded.
    const theirs = await readKeyFile(path);
    if (!theirs) throw new VaultKeyFileError(path, 'disappeared while being created');
    return { key: theirs, created: false, path };
  }
  const mine = await readKeyFile(path);
  if (!mine) throw new VaultKeyFileError(path, 'missing right after it was written');
  return { key: mine, created: true, path };
}

/** Reads and validates the key file; undefined when it does not exist. */
async function readKeyFile(path: string): Promise<VaultKey | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VaultKeyFileError(path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parse error's message may quote file contents (the key): keep it out of the error.
    throw new VaultKeyFileError(path, 'not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new VaultKeyFileError(path, 'not a JSON object');
  const f = parsed as Partial<Record<keyof VaultKeyFile, unknown>>;
  if (f.version !== VAULT_KEY_FILE_VERSION) throw new VaultKeyFileError(path, `unsupported version ${JSON.stringify(f.version)} (want ${VAULT_KEY_FILE_VERSION})`);
  if (typeof f.key !== 'string') throw new VaultKeyFileError(path, '"key" is not a string');
  const raw = Buffer.from(f.key, 'base64');
  // Node's base64 decoder skips junk silently; a key that does not re-encode to itself is corrupt.
  if (raw.length !== VAULT_KEY_BYTES || raw.toString('base64') !== f.key) {
    raw.fill(0);
    throw new VaultKeyFileError(path, `"key" is not ${VAULT_KEY_BYTES} bytes of standard base64`);
  }
  if (typeof f.createdUnixMs !== 'number' || !Number.isSafeInteger(f.createdUnixMs) || f.createdUnixMs < 0) {
    raw.fill(0);
    throw new VaultKeyFileError(path, '"createdUnixMs" is not a non-negative integer');
  }
  return new VaultKey(raw, f.createdUnixMs);
}

/**
 * Writes `data` to a temp file (0600), fsyncs it, moves it to `path` and fsyncs the directory.
 * The move is a hard link rather than a rename so that a key file created concurrently is never
 * replaced: two processes racing on an empty directory agree on one key. Returns false when `path`
 * already existed.
 */
async function publishAtomically(dir: string, path: string, data: Buffer): Promise<boolean> {
  const tmp = join(dir, `.${VAULT_KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  let published = false;
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.link(tmp, path);
      published = true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      // Some file systems have no hard links; fall back to rename after a last existence check.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
      if (await exists(path)) return false;
      await fs.rename(tmp, path);
      published = true;
    }
  } finally {
    await fs.rm(tmp, { force: true });
  }
  await fsyncDir(dir);
  return published;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError('vault key load cancelled');
}
