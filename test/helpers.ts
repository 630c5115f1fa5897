/**
 * Helpers for system tests: seeded data streams, streaming HTTP upload/download with hashing (nothing
 * held whole in memory), file-tree scans, and polling.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/** A deterministic byte stream (xorshift32), optionally starting with `prefix`. */
export function seededStream(size: number, seed: number, prefix: Buffer = Buffer.alloc(0)): Readable {
  let x = seed >>> 0 || 1;
  let left = size;
  let first = true;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, 256 * 1024);
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
      }
      if (first && prefix.length) prefix.copy(b, 0, 0, Math.min(prefix.length, n));
      first = false;
      left -= n;
      this.push(b);
    },
  });
}

/** SHA-256 (hex) of a seeded stream, computed by streaming it. */
export async function seededSha(size: number, seed: number, prefix?: Buffer): Promise<string> {
  const h = createHash('sha256');
  for await (const b of seededStream(size, seed, prefix)) h.update(b as Buffer);
  return h.digest('hex');
}

/** One HTTP response, its body either parsed as JSON or only hashed. */
export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  json?: any;
  sha256: string;
  bytes: number;
}

let bearer: string | null = null;

/** The gateway token `request` sends (as `Authorization: Bearer`) unless the call sets its own header. */
export function setBearerToken(token: string | null): void {
  bearer = token;
}

/** Sends a request, streaming `body` if given; hashes the response body as it arrives. */
export function request(url: string, method: string, body?: Readable, headers: Record<string, string | number> = {}): Promise<HttpResult> {
  if (bearer && !Object.keys(headers).some((h) => h.toLowerCase() === 'authorization')) headers = { ...headers, authorization: `Bearer ${bearer}` };
  return new Promise((resolve, reject) => {
    // The path is sent exactly as written: WHATWG URL parsing would resolve '%2e%2e' segments first.
    const u = new URL(url);
    const path = url.slice(url.indexOf('/', u.protocol.length + 2));
    const req = http.request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      const keep: Buffer[] = [];
      res.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
        if (keep.length < 64) keep.push(d);
      });
      res.on('end', () => {
        const ct = String(res.headers['content-type'] ?? '');
        let json: unknown;
        if (ct.includes('json')) json = JSON.parse(Buffer.concat(keep).toString('utf8') || 'null');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json, sha256: h.digest('hex'), bytes });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body.pipe(req);
    else req.end();
  });
}

/** PUT a seeded file of `size` bytes. */
export function putSeeded(base: string, path: string, size: number, seed: number, prefix?: Buffer): Promise<HttpResult> {
  return request(`${base}/v1/files/${path}`, 'PUT', seededStream(size, seed, prefix), { 'content-length': size });
}

/** Every regular file below `dir`. */
export async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** True if any file below `dir` contains `needle`. */
export async function treeContains(dir: string, needle: Buffer): Promise<string | null> {
  for (const f of await walk(dir)) {
    if ((await stat(f)).size > 64 * 1024 * 1024) continue;
    if ((await readFile(f)).includes(needle)) return f;
  }
  return null;
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 20000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
