/**
 * Shared by the fault specs (faults-*.spec.ts): uploads and downloads with a hard time bound (a request
 * that does not end in time is reported as `hang`, never waited for), counting of object copies on disk,
 * and a background stream of uploads.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { basename, join } from 'node:path';
import { seededSha, seededStream, walk } from '../helpers';

/** The end of one bounded request: an HTTP status, a transport error, or `hang` past the bound. */
export interface Outcome {
  status: number | 'error' | 'hang';
  error?: string;
  body?: string;
  sha256?: string;
  ms: number;
}

/** One request with a bound: the request is destroyed and reported as `hang` if it has not ended by then. */
export function bounded(url: string, method: string, token: string, boundMs: number, body?: { size: number; seed: number }): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Omit<Outcome, 'ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...o, ms: Date.now() - started });
    };
    const u = new URL(url);
    const headers: Record<string, string | number> = { authorization: `Bearer ${token}` };
    if (body) headers['content-length'] = body.size;
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, agent: false }, (res) => {
      const h = createHash('sha256');
      const keep: Buffer[] = [];
      let kept = 0;
      res.on('data', (d: Buffer) => {
        h.update(d);
        if (kept < 4096) {
          keep.push(d);
          kept += d.length;
        }
      });
      res.on('end', () => finish({ status: res.statusCode ?? 0, sha256: h.digest('hex'), body: Buffer.concat(keep).toString('utf8').slice(0, 4096) }));
      res.on('error', (e) => finish({ status: 'error', error: e.message }));
      res.on('aborted', () => finish({ status: 'error', error: 'response aborted' }));
    });
    const timer = setTimeout(() => {
      finish({ status: 'hang' });
      req.destroy();
    }, boundMs);
    req.on('error', (e) => finish({ status: 'error', error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }));
    if (body) {
      const src = seededStream(body.size, body.seed);
      src.on('error', () => undefined);
      req.on('close', () => src.destroy());
      src.pipe(req);
    } else req.end();
  });
}

/** Object files ("chunks/<id>", "manifests/<id>") of `folder` on one node's disk. */
export async function objectsOn(dataDir: string, folder: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const kind of ['chunks', 'manifests']) {
    for (const p of await walk(join(dataDir, folder, kind))) {
      const name = basename(p);
      if (/^[0-9a-f]{64}$/.test(name)) out.add(`${kind}/${name}`);
    }
  }
  return out;
}

/** object -> names of the nodes holding it. */
export async function copies(nodes: { name: string; dataDir: string }[], folder: string): Promise<Map<string, string[]>> {
  const m = new Map<string, string[]>();
  for (const n of nodes) for (const o of await objectsOn(n.dataDir, folder)) m.set(o, [...(m.get(o) ?? []), n.name]);
  return m;
}

/** True when the object file's bytes hash to its name (the content address). */
export async function intact(dataDir: string, folder: string, object: string): Promise<boolean> {
  const [kind, id] = object.split('/') as [string, string];
  try {
    const data = await readFile(join(dataDir, folder, kind, id.slice(0, 2), id));
    return createHash('sha256').update(data).digest('hex') === id;
  } catch {
    return false;
  }
}

/** One upload of the background stream. */
export interface Upload {
  path: string;
  size: number;
  seed: number;
  sha: Promise<string>;
  outcome?: Outcome;
  startedAt: number;
}

/**
 * Uploads seeded files through the gateway, `concurrency` at a time, until stop() is called; every request is
 * bounded. `sizes` cycles. Returns the list (filled as uploads start) and stop(), which resolves once every
 * upload has ended.
 */
export function uploadStream(opts: { base: () => string; token: string; prefix: string; sizes: number[]; concurrency: number; boundMs: number; seed0: number }) {
  const uploads: Upload[] = [];
  let stopping = false;
  let n = 0;
  const worker = async () => {
    while (!stopping) {
      const i = n++;
      const size = opts.sizes[i % opts.sizes.length]!;
      const seed = opts.seed0 + i;
      const up: Upload = { path: `${opts.prefix}/${i}.bin`, size, seed, sha: seededSha(size, seed), startedAt: Date.now() };
      uploads.push(up);
      up.outcome = await bounded(`${opts.base()}/v1/files/${up.path}`, 'PUT', opts.token, opts.boundMs, { size, seed });
      // A refused connection (gateway down) returns at once: do not spin.
      if (up.outcome.status !== 201) await new Promise((r) => setTimeout(r, 100));
    }
  };
  const workers = Array.from({ length: opts.concurrency }, worker);
  return {
    uploads,
    /** Acknowledged (201) uploads so far. */
    acked: () => uploads.filter((u) => u.outcome?.status === 201),
    stop: async () => {
      stopping = true;
      await Promise.all(workers);
      return uploads;
    },
  };
}
