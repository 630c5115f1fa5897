/**
 * Bearer tokens of the HTTP API, kept in `<dir>/tokens.json` (0600). Only the SHA-256 of each token is
 * stored there; the plaintext of a token exists once, when it is created. On first start (no
 * tokens.json) a read-write token named "admin" is created and its plaintext written to `<dir>/token`
 * (0600), where the local CLI finds it. Plain class, no framework.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@distri-vault/shared';

/** What a token may do: `read` (GET, HEAD) or `write` (everything). */
export type TokenScope = 'read' | 'write';

/** A token as listed: never its secret. */
export interface TokenInfo {
  /** Public ID (also the token's second field). */
  id: string;
  /** Label given at creation. */
  name: string;
  /** What it may do. */
  scope: TokenScope;
  /** Creation time (ISO-8601). */
  created: string;
}

interface StoredToken extends TokenInfo {
  sha256: string;
}

/** Tokens look like `dvt_<id>_<secret>`: id 12 hex digits, secret 43 base64url characters. */
const TOKEN = /^dvt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const NAME = /^[\w .:@-]{1,64}$/;

/** File names under the token directory. */
export const TOKENS_FILE = 'tokens.json';
export const FIRST_TOKEN_FILE = 'token';

const sha = (s: string) => createHash('sha256').update(s).digest();

/** The token store of one gateway. */
export class TokenStore {
  private tokens: StoredToken[] = [];
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly dir: string) {}

  /**
   * Opens the store in `dir` (created if missing). On first start, creates the "admin" read-write
   * token, writes it to `<dir>/token`, and returns it as `created` (the caller shows it once).
   */
  static async open(dir: string): Promise<{ store: TokenStore; created?: { token: string; file: string } }> {
    const store = new TokenStore(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let text: string | undefined;
    try {
      text = await readFile(join(dir, TOKENS_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) {
      const parsed = JSON.parse(text) as { tokens?: StoredToken[] };
      if (!Array.isArray(parsed.tokens)) throw new Error(`${join(dir, TOKENS_FILE)}: no tokens array`);
      store.tokens = parsed.tokens;
      return { store };
    }
    const { token } = await store.create('admin', 'write');
    const file = join(dir, FIRST_TOKEN_FILE);
    await writeAtomic(file, `${token}\n`);
    return { store, created: { token, file } };
  }

  /** The scope and ID of a presented token, or undefined when it is unknown, revoked or malformed. */
  verify(token: string): { id: string; scope: TokenScope } | undefined {
    const m = TOKEN.exec(token);
    if (!m) return undefined;
    const t = this.tokens.find((x) => x.id === m[1]);
    if (!t) return undefined;
    const want = Buffer.from(t.sha256, 'hex');
    const got = sha(token);
    return want.length === got.length && timingSafeEqual(want, got) ? { id: t.id, scope: t.scope } : undefined;
  }

  /** Creates a token; its plaintext is returned only here. */
  async create(name: string, scope: TokenScope): Promise<TokenInfo & { token: string }> {
    if (!NAME.test(name)) throw new InvalidArgumentError('invalid token name: 1-64 letters, digits, spaces or ._:@-');
    if (scope !== 'read' && scope !== 'write') throw new InvalidArgumentError("invalid scope: want 'read' or 'write'");
    const id = randomBytes(6).toString('hex');
    const token = `dvt_${id}_${randomBytes(32).toString('base64url')}`;
    const info: TokenInfo = { id, name, scope, created: new Date().toISOString() };
    this.tokens.push({ ...info, sha256: sha(token).toString('hex') });
    await this.save();
    return { ...info, token };
  }

  /** Revokes a token at once; NotFoundError for an unknown ID. */
  async revoke(id: string): Promise<void> {
    const i = this.tokens.findIndex((t) => t.id === id);
    if (i === -1) throw new NotFoundError('no such token');
    this.tokens.splice(i, 1);
    await this.save();
  }

  /** Every live token, oldest first, without secrets. */
  list(): TokenInfo[] {
    return this.tokens.map(({ id, name, scope, created }) => ({ id, name, scope, created }));
  }

  /** Writes tokens.json; writes are serialized so the file always holds the latest state. */
  private save(): Promise<void> {
    const next = this.writing.then(() => writeAtomic(join(this.dir, TOKENS_FILE), `${JSON.stringify({ tokens: this.tokens }, null, 2)}\n`));
    this.writing = next.catch(() => undefined);
    return next;
  }
}

/** Temp file (0600), then rename: a crash leaves the old file or the new one. */
async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600, flush: true });
  await rename(tmp, file);
}
