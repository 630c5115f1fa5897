/**
 * Helpers for the fuzz and load system tests (test/system/fuzz*.spec.ts, load*.spec.ts): a seeded PRNG
 * (every failure names its seed and case), raw HTTP over a socket (for what Node's client refuses to send),
 * snapshots of the nodes' disks, and the processes' liveness and peak RSS (VmHWM) from /proc.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import net from 'node:net';
import { relative } from 'node:path';
import { walk } from './helpers';

/** A seeded PRNG (mulberry32): the same seed gives the same cases. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A short string of printable ASCII. */
  word(max = 12): string {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~';
    let s = '';
    for (let i = 1 + this.int(max); i > 0; i--) s += alphabet[this.int(alphabet.length)];
    return s;
  }
}

/** The seed of this run: FUZZ_SEED if set, else fresh; printed so a failure can be replayed. */
export function fuzzSeed(what: string): number {
  const env = process.env['FUZZ_SEED'];
  const seed = env ? Number(env) >>> 0 : (Date.now() ^ (process.pid << 8)) >>> 0;
  console.log(`${what}: FUZZ_SEED=${seed} (set FUZZ_SEED to replay)`);
  return seed;
}

/** One raw HTTP exchange's answer. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection before a status line arrived. */
  closed: boolean;
}

/**
 * Writes `data` (a whole request, possibly malformed) to host:port and reads the first response. With
 * `halfClose`, the socket's write side is ended after `data` (a client that stops mid-body). Resolves on
 * the end of the first response (by Content-Length, or the socket closing), or after `timeoutMs`.
 */
export function rawHttp(host: string, port: number, data: Buffer | string, opts: { halfClose?: boolean; destroyAfterMs?: number; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const parts: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(parse(Buffer.concat(parts)));
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 10_000);
    sock.on('data', (d) => {
      parts.push(d);
      const a = parse(Buffer.concat(parts));
      if (!a.closed && a.complete) finish();
    });
    sock.on('error', finish);
    sock.on('close', finish);
    sock.write(data, () => {
      if (opts.halfClose) sock.end();
      if (opts.destroyAfterMs !== undefined) setTimeout(() => sock.destroy(), opts.destroyAfterMs);
    });
  });
}

function parse(buf: Buffer): RawAnswer & { complete: boolean } {
  const head = buf.indexOf('\r\n\r\n');
  if (head < 0) return { status: 0, headers: {}, body: '', closed: true, complete: false };
  const lines = buf.subarray(0, head).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = buf.subarray(head + 4);
  const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
  const chunkedDone = headers['transfer-encoding'] === 'chunked' && body.includes('\r\n0\r\n\r\n');
  const complete = (len !== undefined && body.length >= len) || chunkedDone || len === 0;
  return { status, headers, body: body.toString('utf8'), closed: false, complete };
}

/** Relative path and size of every file under each directory (temp/quarantine areas included). */
export async function diskSnapshot(dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const d of dirs) {
    for (const f of await walk(d)) out.push(`${d}:${relative(d, f)}:${(await stat(f)).size}`);
  }
  return out.sort();
}

/** A number field of /proc/<pid>/status in MiB (VmRSS, VmHWM); NaN if the process is gone. */
export function procStatusMiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Every app process of a network started by tools/network.cjs, by name (`node1/peer`, `gateway`, ...). */
export function networkProcs(network: any): { name: string; pid: number; running: boolean; logs: () => string }[] {
  const out = [];
  for (const n of network.nodes) for (const p of Object.values(n.procs) as any[]) if (p) out.push({ name: p.name, pid: p.child.pid, running: p.running, logs: p.logs });
  if (network.gateway) out.push({ name: 'gateway', pid: network.gateway.child.pid, running: network.gateway.running, logs: network.gateway.logs });
  return out;
}

/** Percentile `p` (0-100) of `xs` (nearest rank). */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN;
}
