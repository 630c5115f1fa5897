/**
 * Where the CLI finds the gateway and its token: the only file of the CLI that reads process.env.
 *
 * In order of precedence (default last):
 * - gateway URL: --url, DISTRI_VAULT_URL, http://127.0.0.1:8080
 * - token: --token, DISTRI_VAULT_TOKEN, the file named by --token-file or DISTRI_VAULT_TOKEN_FILE,
 *   else `<VAULT_DIR or .vault>/gateway/token` (the local gateway's first token) when it exists.
 * - NO_COLOR / a non-TTY stderr: no progress bars.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Flags that override the environment. */
export interface ConnectionFlags {
  url?: string;
  token?: string;
  tokenFile?: string;
}

/** Resolved connection settings. */
export interface Connection {
  /** Gateway base URL, without a trailing slash. */
  url: string;
  /** Bearer token, or undefined (the gateway will answer 401). */
  token?: string;
  /** Where the token came from (for error messages; never the token itself). */
  tokenSource: string;
}

/** Default gateway URL (the local network of `npm start`). */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

function readTokenFile(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Resolves URL and token from flags, then the environment, then the local defaults. */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Connection {
  const url = (flags.url ?? env['DISTRI_VAULT_URL'] ?? DEFAULT_URL).replace(/\/+$/, '');
  if (flags.token) return { url, token: flags.token, tokenSource: '--token' };
  if (env['DISTRI_VAULT_TOKEN']) return { url, token: env['DISTRI_VAULT_TOKEN'], tokenSource: 'DISTRI_VAULT_TOKEN' };
  const file = flags.tokenFile ?? env['DISTRI_VAULT_TOKEN_FILE'] ?? join(env['VAULT_DIR'] ?? '.vault', 'gateway', 'token');
  const token = readTokenFile(file);
  return token ? { url, token, tokenSource: file } : { url, tokenSource: `none (no --token, DISTRI_VAULT_TOKEN or ${file})` };
}

/** True when progress bars may be drawn on stderr. */
export function progressAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(process.stderr.isTTY) && !env['NO_COLOR'] && env['TERM'] !== 'dumb';
}
