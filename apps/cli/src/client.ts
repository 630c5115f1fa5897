/**
 * A small streaming client of the gateway's HTTP API (node:http/https): JSON calls, uploads streamed
 * from a file, downloads streamed to a temporary file that is renamed only once its SHA-256 matches the
 * ETag. Every failure is a CliError carrying the exit code.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Exit codes of the CLI. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  unavailable: 5,
  dataLoss: 6,
} as const;

/** An error with the exit code and the gateway's error code when there was one. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly code = 'error',
  ) {
    super(message);
    this.name = 'CliError';
  }
}

function exitFor(status: number, code: string): number {
  if (status === 404) return EXIT.notFound;
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 400 || status === 416) return EXIT.usage;
  if (status === 503 || status === 504) return EXIT.unavailable;
  if (code === 'data_loss') return EXIT.dataLoss;
  return EXIT.failure;
}

/** A file version as the gateway describes it. */
export interface FileView {
  path: string;
  version: number;
  size: number;
  sha256: string;
  updated: string;
  chunks: number;
  deleted?: true;
}

/** Progress callback: bytes done so far. */
export type Progress = (done: number) => void;

/** `a b/c` -> `a%20b/c`: each segment encoded, slashes kept. */
export const encodePath = (p: string): string => p.split('/').map(encodeURIComponent).join('/');

/** Client of one gateway. */
export class GatewayClient {
  constructor(
    private readonly base: string,
    private readonly token: string | undefined,
  ) {}

  private send(method: string, path: string, headers: Record<string, string | number> = {}, body?: Readable): Promise<http.IncomingMessage> {
    const url = new URL(this.base + path);
    const lib = url.protocol === 'https:' ? https : http;
    const h: Record<string, string | number> = { ...headers };
    if (this.token) h['authorization'] = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers: h }, resolve);
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(new CliError(`cannot reach the gateway at ${this.base}: ${err.code ?? err.message}`, EXIT.unavailable, 'unavailable')),
      );
      if (body) {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      } else req.end();
    });
  }

  /** Turns a non-2xx response into a CliError from its JSON error body. */
  private async fail(res: http.IncomingMessage): Promise<never> {
    let text = '';
    for await (const d of res) if (text.length < 65536) text += d;
    let code = 'error';
    let message = `HTTP ${res.statusCode}`;
    try {
      const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
      if (e?.code) code = e.code;
      if (e?.message) message = e.message;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new CliError(message, exitFor(res.statusCode ?? 0, code), code);
  }

  /** A JSON call; resolves with the parsed body (undefined for 204). */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const res = await this.send(method, path, payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}, payload ? Readable.from([payload]) : undefined);
    if ((res.statusCode ?? 0) >= 300) return this.fail(res);
    let text = '';
    for await (const d of res) text += d;
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Streams a local file (or stdin when `file` is '-') into a new version of `remote`. */
  async upload(file: string, remote: string, progress?: Progress): Promise<FileView> {
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
    let source: Readable;
    if (file === '-') {
      source = process.stdin;
      headers['transfer-encoding'] = 'chunked';
    } else {
      const st = await stat(file).catch(() => {
        throw new CliError(`cannot read ${file}`, EXIT.usage, 'invalid_argument');
      });
      if (!st.isFile()) throw new CliError(`${file} is not a regular file`, EXIT.usage, 'invalid_argument');
      headers['content-length'] = st.size;
      source = createReadStream(file, { highWaterMark: 1024 * 1024 });
    }
    let done = 0;
    const counted = source.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          done += chunk.length;
          progress?.(done);
          cb(null, chunk);
        },
      }),
    );
    const res = await this.send('PUT', `/v1/files/${encodePath(remote)}`, headers, counted);
    if (res.statusCode !== 201) return this.fail(res);
    let text = '';
    for await (const d of res) text += d;
    return JSON.parse(text) as FileView;
  }

  /** Headers of a version without its body. */
  async head(remote: string, version?: number): Promise<{ size: number; version: number; sha256: string }> {
    const res = await this.send('HEAD', `/v1/files/${encodePath(remote)}${version ? `?version=${version}` : ''}`);
    res.resume();
    if (res.statusCode !== 200) throw new CliError(res.statusCode === 404 ? 'no such file' : `HTTP ${res.statusCode}`, exitFor(res.statusCode ?? 0, ''));
    return { size: Number(res.headers['content-length']), version: Number(res.headers['x-vault-version']), sha256: String(res.headers['etag']).replace(/"/g, '') };
  }

  /**
   * Streams a version to `dest` ('-': stdout). A file is written as `<dest>.part`, checked against the
   * size and ETag (SHA-256), then renamed; on any failure the partial file is removed.
   */
  async download(remote: string, version: number | undefined, dest: string, onStart?: (size: number) => void, progress?: Progress): Promise<{ path: string; version: number; size: number; sha256: string }> {
    const res = await this.send('GET', `/v1/files/${encodePath(remote)}${version ? `?version=${version}` : ''}`);
    if (res.statusCode !== 200) return this.fail(res);
    const size = Number(res.headers['content-length']);
    const want = String(res.headers['etag'] ?? '').replace(/"/g, '');
    onStart?.(size);
    const hash = createHash('sha256');
    let done = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        done += chunk.length;
        progress?.(done);
        cb(null, chunk);
      },
    });
    const part = `${dest}.part`;
    try {
      await pipeline(res, meter, dest === '-' ? process.stdout : createWriteStream(part));
      if (res.readableAborted || !res.complete) throw new CliError('the download was cut off', EXIT.dataLoss, 'data_loss');
      const got = hash.digest('hex');
      if (done !== size || got !== want) throw new CliError(`downloaded ${done} bytes with SHA-256 ${got}; the gateway announced ${size} bytes, ${want}`, EXIT.dataLoss, 'data_loss');
      if (dest !== '-') await rename(part, dest);
    } catch (err) {
      if (dest !== '-') await rm(part, { force: true });
      if (err instanceof CliError) throw err;
      throw new CliError(`download failed: ${(err as Error).message}`, EXIT.dataLoss, 'data_loss');
    }
    return { path: remote, version: Number(res.headers['x-vault-version']), size, sha256: want };
  }
}
