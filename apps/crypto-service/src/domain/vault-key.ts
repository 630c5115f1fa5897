/**
 * Custody of one node's vault key: 32 random bytes in `<dir>/vault-key.json`, created atomically on
 * first start and loaded afterwards. Only sub-keys derived with HKDF-SHA256 are ever used for
 * encryption; the raw key serves for derivation and the public fingerprint, then is wiped from memory.
 */
import { createHash, createSecretKey, hkdfSync, randomBytes, scrypt as scryptCb, type KeyObject } from 'node:crypto';
import { constants as fsc, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { base32, CancelledError, DataLossError, FailedPreconditionError, InvalidArgumentError } from '@distri-vault/shared';
import { openEnvelope, sealEnvelope } from './envelope';

/** Name of the key file inside the key directory. */
export const VAULT_KEY_FILE = 'vault-key.json';
/** Version of the key file's JSON layout: 1 plain, 2 passphrase-protected. */
export const VAULT_KEY_FILE_VERSION = 1;
/** Version of a passphrase-protected key file. */
export const PROTECTED_KEY_FILE_VERSION = 2;
/** Associated data of the vault key sealed under the passphrase-derived key. */
export const KEY_FILE_AD = 'distri-vault/keyfile/v2\0';
/** Prefix of a printable recovery key. */
export const RECOVERY_KEY_PREFIX = 'DVRK1';
/** Prefix hashed before the key to make the recovery key's check bytes. */
export const RECOVERY_CHECK_PREFIX = 'distri-vault/recovery/v1\0';
/** Bytes of the recovery key's check (a typo is caught except with probability 2^-24). */
export const RECOVERY_CHECK_BYTES = 3;
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

/** The passphrase given is wrong (or the protected key file was altered), or none was given for a protected file. */
export class VaultKeyPassphraseError extends FailedPreconditionError {
  constructor(message: string) {
    super(message);
    this.name = 'VaultKeyPassphraseError';
  }
}

/** A recovery key that is malformed or fails its check (a typo). */
export class RecoveryKeyError extends InvalidArgumentError {
  constructor(why: string) {
    super(`recovery key ${why}`);
    this.name = 'RecoveryKeyError';
  }
}

/** scrypt parameters of a protected key file; stored in the file, so they can be raised later. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

/** Default scrypt cost: N = 2^17, r = 8, p = 1 (128 MiB, a few hundred ms; OWASP's recommendation). */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

/** Contents of vault-key.json, version 2 (passphrase-protected). */
export interface ProtectedVaultKeyFile {
  /** Layout version: 2. */
  version: number;
  /** The KDF and its parameters; salt is 16 random bytes, standard base64. */
  kdf: { name: 'scrypt'; salt: string } & ScryptParams;
  /** Envelope v1 of the 32-byte key under scrypt(passphrase, salt), associated data KEY_FILE_AD; base64. */
  sealedKey: string;
  /** Public fingerprint of the key (lets a wrong file be told apart before asking for the passphrase). */
  fingerprint: string;
  /** When the key was created, Unix milliseconds. */
  createdUnixMs: number;
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
  /** Passphrase: a new key file is written protected with it; a protected file needs it. */
  passphrase?: string;
  /** scrypt cost of a new protected file. Default DEFAULT_SCRYPT. */
  scrypt?: ScryptParams;
}

/** What loadOrCreateVaultKey found. */
export interface LoadedVaultKey {
  /** The derived keys. */
  key: VaultKey;
  /** True when this call created the key file. */
  created: boolean;
  /** Path of the key file. */
  path: string;
  /** True when the key file is passphrase-protected (version 2). */
  protected: boolean;
}

/**
 * Loads the vault key from `<dir>/vault-key.json`, creating the directory (0700) and the file (0600)
 * with a fresh random key when the file does not exist. A file that exists but is malformed raises
 * VaultKeyFileError and is never touched.
 */
export async function loadOrCreateVaultKey(dir: string, opts: VaultKeyOptions = {}): Promise<LoadedVaultKey> {
  const path = join(dir, VAULT_KEY_FILE);
  throwIfAborted(opts.signal);
  const existing = await readKeyFile(path, opts.passphrase);
  if (existing) return { ...existing, created: false, path };

  throwIfAborted(opts.signal);
  const raw = randomBytes(VAULT_KEY_BYTES);
  const created = await writeKeyFile(dir, raw, (opts.now ?? Date.now)(), opts);
  if (!created) {
    // Another process created the key between our read and our publish: its key wins, ours is discarded.
    const theirs = await readKeyFile(path, opts.passphrase);
    if (!theirs) throw new VaultKeyFileError(path, 'disappeared while being created');
    return { ...theirs, created: false, path };
  }
  const mine = await readKeyFile(path, opts.passphrase);
  if (!mine) throw new VaultKeyFileError(path, 'missing right after it was written');
  return { ...mine, created: true, path };
}

/**
 * Writes a key file for `raw` (zero-filled afterwards) into `dir`: version 2 sealed under
 * scrypt(passphrase) when opts.passphrase is set, else version 1. False when a key file already exists.
 */
async function writeKeyFile(dir: string, raw: Buffer, createdUnixMs: number, opts: VaultKeyOptions, name = VAULT_KEY_FILE): Promise<boolean> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    throwIfAborted(opts.signal);
    let body: VaultKeyFile | ProtectedVaultKeyFile;
    if (opts.passphrase !== undefined) {
      const params = opts.scrypt ?? DEFAULT_SCRYPT;
      const salt = randomBytes(16);
      const kek = await passphraseKey(opts.passphrase, salt, params);
      body = {
        version: PROTECTED_KEY_FILE_VERSION,
        kdf: { name: 'scrypt', salt: salt.toString('base64'), N: params.N, r: params.r, p: params.p },
        sealedKey: sealEnvelope(kek, Buffer.from(KEY_FILE_AD, 'utf8'), raw).toString('base64'),
        fingerprint: fingerprintOf(raw),
        createdUnixMs,
      };
    } else {
      body = { version: VAULT_KEY_FILE_VERSION, key: raw.toString('base64'), createdUnixMs };
    }
    return await publishAtomically(dir, join(dir, name), Buffer.from(JSON.stringify(body) + '\n', 'utf8'));
  } finally {
    raw.fill(0);
  }
}

/** scrypt(passphrase, salt) -> 32-byte AES key. */
async function passphraseKey(passphrase: string, salt: Buffer, params: ScryptParams): Promise<KeyObject> {
  if (passphrase.length === 0) throw new VaultKeyPassphraseError('the passphrase is empty');
  const out = await new Promise<Buffer>((resolve, reject) =>
    scryptCb(passphrase.normalize('NFC'), salt, 32, { N: params.N, r: params.r, p: params.p, maxmem: 128 * params.N * params.r * params.p + 32 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
  const key = createSecretKey(out);
  out.fill(0);
  return key;
}

/**
 * Reads the raw vault key out of `<dir>/vault-key.json` for a recovery-key export. The caller must
 * zero-fill the buffer. VaultKeyFileError when there is no usable file.
 */
export async function readRawVaultKey(dir: string, passphrase?: string): Promise<{ raw: Buffer; createdUnixMs: number }> {
  const path = join(dir, VAULT_KEY_FILE);
  const got = await readKeyMaterial(path, passphrase);
  if (!got) throw new VaultKeyFileError(path, 'does not exist');
  return got;
}

/** The printable recovery key of the vault key in `dir` (see encodeRecoveryKey). */
export async function exportRecoveryKey(dir: string, passphrase?: string): Promise<string> {
  const { raw } = await readRawVaultKey(dir, passphrase);
  try {
    return encodeRecoveryKey(raw);
  } finally {
    raw.fill(0);
  }
}

/**
 * Writes the key file of a recovery key into `dir` (protected when opts.passphrase is set). Refuses with
 * FailedPreconditionError when a key file exists there already: an import never replaces a key.
 */
export async function importRecoveryKey(dir: string, recoveryKey: string, opts: VaultKeyOptions = {}): Promise<LoadedVaultKey> {
  const raw = decodeRecoveryKey(recoveryKey);
  const path = join(dir, VAULT_KEY_FILE);
  if (await exists(path)) {
    raw.fill(0);
    throw new FailedPreconditionError(`${path} already exists; an import never replaces a key (move it away first)`);
  }
  if (!(await writeKeyFile(dir, raw, (opts.now ?? Date.now)(), opts))) throw new FailedPreconditionError(`${path} was created concurrently; import refused`);
  const loaded = await readKeyFile(path, opts.passphrase);
  if (!loaded) throw new VaultKeyFileError(path, 'missing right after it was written');
  return { ...loaded, created: true, path };
}

/** File name of a previous (rotated-out) vault key: vault-key.<fingerprint>.json. */
export function previousKeyFile(fingerprint: string): string {
  return `vault-key.${fingerprint}.json`;
}
const PREVIOUS_KEY_RE = /^vault-key\.([0-9a-f]{16})\.json$/;
const NEXT_KEY_FILE = 'vault-key.next.json';

/** The current vault key and the previous ones still kept to open older data. */
export interface Keyring {
  /** Seals everything new. */
  current: LoadedVaultKey;
  /** Rotated-out keys, kept to open (and re-wrap) what they sealed until retired. */
  previous: VaultKey[];
}

/**
 * Loads (or creates) the current key and every previous key file `vault-key.<fingerprint>.json` of `dir`
 * (opened with the same passphrase). A previous file with the current key's fingerprint (left by a
 * rotation interrupted before its last step) is skipped.
 */
export async function loadKeyring(dir: string, opts: VaultKeyOptions = {}): Promise<Keyring> {
  const current = await loadOrCreateVaultKey(dir, opts);
  const previous: VaultKey[] = [];
  for (const name of (await fs.readdir(dir)).sort()) {
    const m = PREVIOUS_KEY_RE.exec(name);
    if (!m || m[1] === current.key.fingerprint) continue;
    const got = await readKeyFile(join(dir, name), opts.passphrase);
    if (!got) continue;
    if (got.key.fingerprint !== m[1]) throw new VaultKeyFileError(join(dir, name), 'its key does not match the fingerprint in its name');
    previous.push(got.key);
  }
  return { current, previous };
}

/**
 * Rotates the vault key of `dir` (the service must be restarted to use it): the current key file is kept
 * as `vault-key.<old fingerprint>.json` and a fresh key becomes `vault-key.json` (protected when
 * opts.passphrase is set). Every step is atomic; an interrupted rotation leaves either the old or the new
 * key current, and the old one still on disk. Data keys wrapped by the old key keep opening until it is
 * retired; re-wrap them (CryptoEngine.rewrapDataKey) first. Write down the new recovery key.
 */
export async function rotateVaultKey(dir: string, opts: VaultKeyOptions = {}): Promise<{ previous: string; current: LoadedVaultKey }> {
  const path = join(dir, VAULT_KEY_FILE);
  const old = await readKeyFile(path, opts.passphrase);
  if (!old) throw new VaultKeyFileError(path, 'does not exist: nothing to rotate');
  const keep = join(dir, previousKeyFile(old.key.fingerprint));
  if (!(await exists(keep))) await fs.link(path, keep);
  await fs.rm(join(dir, NEXT_KEY_FILE), { force: true });
  const raw = randomBytes(VAULT_KEY_BYTES);
  if (!(await writeKeyFile(dir, raw, (opts.now ?? Date.now)(), opts, NEXT_KEY_FILE))) throw new FailedPreconditionError('a concurrent rotation is under way');
  await fs.rename(join(dir, NEXT_KEY_FILE), path);
  await fsyncDir(dir);
  const current = await readKeyFile(path, opts.passphrase);
  if (!current) throw new VaultKeyFileError(path, 'missing right after rotation');
  return { previous: old.key.fingerprint, current: { ...current, created: true, path } };
}

/**
 * Retires (deletes) a previous vault key: every data key and manifest only it wrapped becomes unreadable
 * for good, copies on peers included (crypto-shredding). Refuses the current key and unknown fingerprints.
 */
export async function retireVaultKey(dir: string, fingerprint: string, opts: VaultKeyOptions = {}): Promise<void> {
  if (!/^[0-9a-f]{16}$/.test(fingerprint)) throw new InvalidArgumentError(`${JSON.stringify(fingerprint)} is not a key fingerprint (16 hex characters)`);
  const current = await readKeyFile(join(dir, VAULT_KEY_FILE), opts.passphrase);
  if (current?.key.fingerprint === fingerprint) throw new FailedPreconditionError(`${fingerprint} is the current vault key; rotate first`);
  const path = join(dir, previousKeyFile(fingerprint));
  if (!(await exists(path))) throw new FailedPreconditionError(`no previous vault key ${fingerprint} in ${dir}`);
  await fs.unlink(path);
  await fsyncDir(dir);
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * The printable recovery key: "DVRK1-" then base32 (RFC 4648, no padding) of the 32-byte key followed by
 * 3 check bytes (SHA-256 of RECOVERY_CHECK_PREFIX + key), in 14 groups of 4 separated by "-".
 */
export function encodeRecoveryKey(raw: Uint8Array): string {
  if (raw.length !== VAULT_KEY_BYTES) throw new RangeError(`vault key must be ${VAULT_KEY_BYTES} bytes`);
  const check = createHash('sha256').update(RECOVERY_CHECK_PREFIX, 'utf8').update(raw).digest().subarray(0, RECOVERY_CHECK_BYTES);
  const bytes = Buffer.concat([raw, check]);
  const text = base32(bytes).toUpperCase();
  bytes.fill(0);
  return [RECOVERY_KEY_PREFIX, ...(text.match(/.{4}/g) ?? [])].join('-');
}

/**
 * Parses a recovery key (case, spaces and dashes do not matter): RecoveryKeyError when it has the
 * wrong prefix, length or characters, or its check bytes do not match (a typo).
 */
export function decodeRecoveryKey(text: string): Buffer {
  const compact = text.toUpperCase().replace(/[\s-]/g, '');
  if (!compact.startsWith(RECOVERY_KEY_PREFIX)) throw new RecoveryKeyError(`must start with ${RECOVERY_KEY_PREFIX}-`);
  const body = compact.slice(RECOVERY_KEY_PREFIX.length);
  const wantChars = ((VAULT_KEY_BYTES + RECOVERY_CHECK_BYTES) * 8) / 5;
  if (body.length !== wantChars) throw new RecoveryKeyError(`has ${body.length} characters after the prefix, want ${wantChars}`);
  const bytes = Buffer.alloc(VAULT_KEY_BYTES + RECOVERY_CHECK_BYTES);
  let bits = 0;
  let acc = 0;
  let pos = 0;
  for (let i = 0; i < body.length; i++) {
    const v = BASE32.indexOf(body[i]!);
    if (v < 0) throw new RecoveryKeyError(`has an invalid character at position ${i + 1} after the prefix (A-Z and 2-7 only)`);
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bytes[pos++] = (acc >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
    acc &= 0xff;
  }
  const raw = Buffer.from(bytes.subarray(0, VAULT_KEY_BYTES));
  const check = createHash('sha256').update(RECOVERY_CHECK_PREFIX, 'utf8').update(raw).digest().subarray(0, RECOVERY_CHECK_BYTES);
  const ok = check.equals(bytes.subarray(VAULT_KEY_BYTES));
  bytes.fill(0);
  if (!ok) {
    raw.fill(0);
    throw new RecoveryKeyError('fails its check: a character is mistyped');
  }
  return raw;
}

/** Reads the key file and derives the vault key; undefined when it does not exist. */
async function readKeyFile(path: string, passphrase?: string): Promise<{ key: VaultKey; protected: boolean } | undefined> {
  const got = await readKeyMaterial(path, passphrase);
  return got && { key: new VaultKey(got.raw, got.createdUnixMs), protected: got.protected };
}

/** Reads and validates the key file; undefined when it does not exist. */
async function readKeyMaterial(path: string, passphrase?: string): Promise<{ raw: Buffer; createdUnixMs: number; protected: boolean } | undefined> {
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
  if ((parsed as { version?: unknown }).version === PROTECTED_KEY_FILE_VERSION) return readProtected(path, parsed as Record<string, unknown>, passphrase);
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
  return { raw, createdUnixMs: f.createdUnixMs, protected: false };
}

/** Opens a version-2 (passphrase-protected) key file. */
async function readProtected(path: string, f: Record<string, unknown>, passphrase?: string): Promise<{ raw: Buffer; createdUnixMs: number; protected: boolean }> {
  const kdf = f['kdf'] as Record<string, unknown> | undefined;
  if (typeof kdf !== 'object' || kdf === null || kdf['name'] !== 'scrypt') throw new VaultKeyFileError(path, '"kdf" is not {"name":"scrypt",...}');
  const { N, r, p } = kdf as Record<string, number>;
  const int = (v: unknown, max: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= max;
  if (!int(N, 2 ** 24) || (N! & (N! - 1)) !== 0 || N! < 2 || !int(r, 64) || !int(p, 16)) throw new VaultKeyFileError(path, 'scrypt parameters out of range');
  const salt = typeof kdf['salt'] === 'string' ? Buffer.from(kdf['salt'], 'base64') : Buffer.alloc(0);
  if (salt.length < 16) throw new VaultKeyFileError(path, 'scrypt salt is not at least 16 bytes of base64');
  const sealed = typeof f['sealedKey'] === 'string' ? Buffer.from(f['sealedKey'], 'base64') : Buffer.alloc(0);
  if (sealed.length !== VAULT_KEY_BYTES + 29) throw new VaultKeyFileError(path, '"sealedKey" is not a 61-byte envelope');
  const createdUnixMs = f['createdUnixMs'];
  if (typeof createdUnixMs !== 'number' || !Number.isSafeInteger(createdUnixMs) || createdUnixMs < 0) {
    throw new VaultKeyFileError(path, '"createdUnixMs" is not a non-negative integer');
  }
  if (passphrase === undefined) throw new VaultKeyPassphraseError(`vault key file ${path} is passphrase-protected: give the passphrase (CRYPTO_PASSPHRASE_FILE)`);
  const kek = await passphraseKey(passphrase, salt, { N: N!, r: r!, p: p! });
  let raw: Buffer;
  try {
    raw = openEnvelope(kek, Buffer.from(KEY_FILE_AD, 'utf8'), sealed, 'vault key file');
  } catch (err) {
    if (err instanceof DataLossError || err instanceof InvalidArgumentError) throw new VaultKeyPassphraseError(`wrong passphrase for vault key file ${path} (or the file was altered)`);
    throw err;
  }
  if (typeof f['fingerprint'] === 'string' && f['fingerprint'] !== fingerprintOf(raw)) {
    raw.fill(0);
    throw new VaultKeyFileError(path, '"fingerprint" does not match the key');
  }
  return { raw, createdUnixMs, protected: true };
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
