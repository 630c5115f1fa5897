/**
 * Test support: a real grpc-js NodeService on 127.0.0.1:0 that keeps files in memory and records what
 * it was sent, plus an HTTP client that sends URLs exactly as written (fetch would normalise '..').
 * Paths under `err/<code>/` make the fake throw that domain error, so every status can be provoked.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import pino from 'pino';
import {
  CancelledError,
  clientStream,
  DataLossError,
  InvalidArgumentError,
  NotFoundError,
  serverStream,
  startGrpcServer,
  unary,
  UnavailableError,
  writeMessage,
  type RunningServer,
  type VaultError,
} from '@distri-vault/shared';
import { NodeServiceService, NodeState, RecoveryPhase, type FileInfo, type Message, type NodeServiceServer, type RecoveryStatus, type RepairStatus } from '@distri-vault/shared/generated/vault/node/v1/node';

/** What the fake saw of one UploadFile call. */
export interface UploadRecord {
  /** Path from the header. */
  path: string;
  /** Size from the header, if any. */
  size?: number;
  /** Length of every data frame, in order. */
  frames: number[];
  /** True once the caller cancelled the call. */
  cancelled: boolean;
  /** True once the upload was stored. */
  stored: boolean;
}

/** Size announced by `err/after-header` downloads; only a third of it is ever sent. */
export const BROKEN_DOWNLOAD_SIZE = 3 * 1024 * 1024;

function errorFor(path: string): VaultError | undefined {
  const m = /^err\/([a-z_]+)(\/|$)/.exec(path);
  if (!m) return undefined;
  switch (m[1]) {
    case 'not_found': return new NotFoundError('no such file');
    case 'invalid_argument': return new InvalidArgumentError('node refused the request');
    case 'data_loss': return new DataLossError('chunk failed verification');
    case 'unavailable': return new UnavailableError('no peer reachable');
    default: return undefined;
  }
}

/** An in-memory NodeService. */
export class FakeNode {
  /** Messages sent through SendMessage, as ListMessages returns them. */
  readonly messages: Message[] = [];
  /** Every RPC received, by method name, in order. */
  readonly calls: string[] = [];
  /** What GetRecoveryStatus answers; StartRecovery moves it to SYNCING (a run stays "running"). */
  recovery: RecoveryStatus = {
    phase: RecoveryPhase.RECOVERY_PHASE_IDLE, run: 0, trigger: '', startedUnixMs: 0, finishedUnixMs: 0, peersDone: 0, peersTotal: 0, chunks: 0, manifests: 0,
    bytes: 0, bytesPerSecond: 0, files: 0, chunksChecked: 0, chunksMissing: 0, errors: 0, errorMessages: [], durationMs: 0,
  };
  /** The last repair pass GetNodeInfo reports (none by default). */
  lastRepair: RepairStatus | undefined;
  /** The offset of every DownloadFile call, in order. */
  readonly offsets: number[] = [];
  /** DownloadFile calls the caller cancelled. */
  downloadsCancelled = 0;
  /** Every upload received. */
  readonly uploads: UploadRecord[] = [];
  /** Stored versions per path (a deletion is a version with `deleted`; `removed` ones are out of the history). */
  readonly files = new Map<string, { info: FileInfo; data: Buffer; deleted: boolean; removed?: boolean }[]>();
  private server?: RunningServer;
  private readonly log = pino({ level: 'silent' });

  /** Address to point the gateway at. */
  get address(): string {
    return `127.0.0.1:${this.server?.port}`;
  }

  /** Starts serving on 127.0.0.1 (port 0, or `port` to come back where it was). */
  async start(port = 0): Promise<this> {
    this.server = await startGrpcServer({ host: '127.0.0.1', port, log: this.log, services: [{ name: 'vault.node.v1.NodeService', definition: NodeServiceService, implementation: this.impl() }] });
    return this;
  }

  /** Stops serving at once. */
  async stop(): Promise<void> {
    await this.server?.close(0);
  }

  /** The latest live version of a path. */
  latest(path: string): { info: FileInfo; data: Buffer } | undefined {
    const v = this.history(path).at(-1);
    return v && !v.deleted ? v : undefined;
  }

  /** The versions of a path still in its history. */
  history(path: string): { info: FileInfo; data: Buffer; deleted: boolean }[] {
    return (this.files.get(path) ?? []).filter((v) => !v.removed);
  }

  private impl(): NodeServiceServer {
    const log = this.log;
    return {
      uploadFile: clientStream(log, 'UploadFile', async (call) => {
        this.calls.push('UploadFile');
        let rec: UploadRecord | undefined;
        const parts: Buffer[] = [];
        let finished = false;
        call.on('cancelled', () => {
          if (rec) rec.cancelled = true;
          call.destroy();
        });
        for await (const msg of call as AsyncIterable<{ step?: { $case: 'header'; value: { path: string; size?: number } } | { $case: 'data'; value: Buffer } | { $case: 'finish'; value: { bytes: number } } }>) {
          if (msg.step?.$case === 'header') {
            if (rec) throw new InvalidArgumentError('second header');
            rec = { path: msg.step.value.path, size: msg.step.value.size, frames: [], cancelled: false, stored: false };
            this.uploads.push(rec);
            const err = errorFor(rec.path);
            if (err) throw err;
          } else if (msg.step?.$case === 'data') {
            if (!rec) throw new InvalidArgumentError('data before header');
            rec.frames.push(msg.step.value.length);
            parts.push(msg.step.value);
          } else if (msg.step?.$case === 'finish') {
            if (!rec) throw new InvalidArgumentError('finish before header');
            finished = true;
          }
        }
        if (!rec) throw new InvalidArgumentError('no header');
        // As the node: a stream that ends without finish is an upload cut short.
        if (!finished) throw new InvalidArgumentError('ended without finish');
        // grpc-js ends the request stream of a cancelled call: what arrived is not a whole upload.
        if ((call as { cancelled?: boolean }).cancelled) throw new CancelledError('upload cancelled');
        const data = Buffer.concat(parts);
        if (rec.size !== undefined && rec.size !== data.length) throw new InvalidArgumentError('size mismatch');
        const versions = this.files.get(rec.path) ?? [];
        const info: FileInfo = {
          path: rec.path,
          version: versions.length + 1,
          size: data.length,
          sha256: createHash('sha256').update(data).digest('hex'),
          updatedUnixMs: 1_700_000_000_000 + versions.length,
          chunks: Math.ceil(data.length / (1024 * 1024)),
          deleted: false,
        };
        versions.push({ info, data, deleted: false });
        this.files.set(rec.path, versions);
        rec.stored = true;
        return { file: info };
      }),
      downloadFile: serverStream(log, 'DownloadFile', async (call, signal) => {
        this.calls.push('DownloadFile');
        call.on('cancelled', () => this.downloadsCancelled++);
        const { path, version } = call.request;
        if (path === 'err/after-header') {
          await writeMessage(call, { step: { $case: 'header', value: { path, version: 1, size: BROKEN_DOWNLOAD_SIZE, sha256: '0'.repeat(64), updatedUnixMs: 0, chunks: 3, deleted: false } } }, signal);
          await writeMessage(call, { step: { $case: 'data', value: Buffer.alloc(BROKEN_DOWNLOAD_SIZE / 3, 7) } }, signal);
          throw new DataLossError('chunk 2 failed verification');
        }
        const err = errorFor(path);
        if (err) throw err;
        const versions = this.history(path);
        const v = version === undefined ? versions.at(-1) : versions.find((x) => x.info.version === version);
        if (!v || v.deleted) throw new NotFoundError('no such file');
        await writeMessage(call, { step: { $case: 'header', value: v.info } }, signal);
        this.offsets.push(call.request.offset);
        for (let off = call.request.offset; off < v.data.length; off += 256 * 1024) {
          await writeMessage(call, { step: { $case: 'data', value: v.data.subarray(off, off + 256 * 1024) } }, signal);
        }
      }),
      statFile: unary(log, 'StatFile', async (req) => {
        this.calls.push('StatFile');
        if (req.path === 'err/after-header') return { file: { path: req.path, version: 1, size: BROKEN_DOWNLOAD_SIZE, sha256: '0'.repeat(64), updatedUnixMs: 0, chunks: 3, deleted: false } };
        const err = errorFor(req.path);
        if (err) throw err;
        const versions = this.history(req.path);
        const v = req.version === undefined ? versions.at(-1) : versions.find((x) => x.info.version === req.version);
        if (!v || v.deleted) throw new NotFoundError('no such file');
        return { file: v.info };
      }),
      listFiles: unary(log, 'ListFiles', async (req) => {
        this.calls.push('ListFiles');
        const err = errorFor(req.prefix);
        if (err) throw err;
        const files = [...this.files.keys()]
          .filter((p) => p.startsWith(req.prefix))
          .sort()
          .map((p) => this.latest(p)?.info)
          .filter((f): f is FileInfo => f !== undefined)
          .filter((f) => !req.startAfter || f.path > req.startAfter);
        const more = req.limit > 0 && files.length > req.limit;
        const page = more ? files.slice(0, req.limit) : files;
        return { files: page, nextStartAfter: more ? page[page.length - 1]!.path : '' };
      }),
      deleteFile: unary(log, 'DeleteFile', async (req) => {
        this.calls.push('DeleteFile');
        const err = errorFor(req.path);
        if (err) throw err;
        const live = this.latest(req.path);
        if (!live) throw new NotFoundError('no such file');
        const versions = this.files.get(req.path)!;
        versions.push({ info: { ...live.info, version: versions.length + 1, size: 0, sha256: '', chunks: 0, deleted: true }, data: Buffer.alloc(0), deleted: true });
        return { version: versions.length };
      }),
      listVersions: unary(log, 'ListVersions', async (req) => {
        this.calls.push('ListVersions');
        const err = errorFor(req.path);
        if (err) throw err;
        const list = this.history(req.path);
        if (list.length === 0) throw new NotFoundError('no such file');
        return { versions: list.map((v) => v.info) };
      }),
      restoreVersion: unary(log, 'RestoreVersion', async (req) => {
        this.calls.push('RestoreVersion');
        const old = this.history(req.path).find((v) => v.info.version === req.version && !v.deleted);
        if (!old) throw new NotFoundError('no such version');
        const versions = this.files.get(req.path)!;
        const info = { ...old.info, version: versions.length + 1, updatedUnixMs: 1_700_000_000_000 + versions.length };
        versions.push({ info, data: old.data, deleted: false });
        return { file: info };
      }),
      deleteVersion: unary(log, 'DeleteVersion', async (req) => {
        this.calls.push('DeleteVersion');
        const hit = this.history(req.path).filter((v) => req.all || v.info.version === req.version);
        if (hit.length === 0) throw new NotFoundError('no such version');
        for (const v of hit) (v as { removed?: boolean }).removed = true;
        return { removed: hit.length };
      }),
      listNodes: unary(log, 'ListNodes', async () => {
        this.calls.push('ListNodes');
        return {
          nodes: [
            { serverId: 'a'.repeat(32), address: '127.0.0.1:7000', state: NodeState.NODE_STATE_SELF, lastSeenUnixMs: 0, sinceUnixMs: 1_600_000_000_000 },
            { serverId: 'b'.repeat(32), address: '127.0.0.1:7001', state: NodeState.NODE_STATE_CONNECTED, lastSeenUnixMs: 1_700_000_000_000, sinceUnixMs: 1_690_000_000_000 },
            { serverId: 'c'.repeat(32), address: '127.0.0.1:7003', state: NodeState.NODE_STATE_SUSPECT, lastSeenUnixMs: 1_700_000_000_000, sinceUnixMs: 1_700_000_006_000 },
            { serverId: 'd'.repeat(32), address: '127.0.0.1:7004', state: NodeState.NODE_STATE_DOWN, lastSeenUnixMs: 1_700_000_000_000, sinceUnixMs: 1_700_000_015_000 },
            { serverId: 'e'.repeat(32), address: '127.0.0.1:7005', state: NodeState.NODE_STATE_LEFT, lastSeenUnixMs: 1_700_000_000_000, sinceUnixMs: 1_700_000_000_000 },
            { serverId: '', address: '127.0.0.1:7002', state: NodeState.NODE_STATE_CONNECTING, lastSeenUnixMs: 0, sinceUnixMs: 0 },
          ],
        };
      }),
      // Members b (connected) and c (suspect) are reachable; d is down; anything else is unknown.
      sendMessage: unary(log, 'SendMessage', async (req) => {
        this.calls.push('SendMessage');
        if (req.to && !/^[a-z2-7]{32}$/.test(req.to)) throw new InvalidArgumentError('invalid server ID');
        if (!/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/.test(req.topic)) throw new InvalidArgumentError('invalid topic');
        if (req.body.length > 65536) throw new InvalidArgumentError('body too large');
        if (req.to === 'd'.repeat(32)) throw new UnavailableError('member is down');
        if (req.to && req.to !== 'b'.repeat(32) && req.to !== 'c'.repeat(32)) throw new NotFoundError('unknown member');
        const id = (this.messages.length + 1).toString(16).padStart(32, '0');
        this.messages.push({ id, from: 'a'.repeat(32), to: req.to, topic: req.topic, body: Buffer.from(req.body), sentUnixMs: 1_700_000_000_000, receivedUnixMs: 1_700_000_000_000 + this.messages.length });
        return { id, recipients: req.to ? [req.to] : ['b'.repeat(32), 'c'.repeat(32)] };
      }),
      listMessages: unary(log, 'ListMessages', async (req) => {
        this.calls.push('ListMessages');
        // Pages of two, continued by ID, as the node cuts them by size.
        const all = this.messages.filter((m) => m.receivedUnixMs >= req.sinceUnixMs && (!req.topic || m.topic === req.topic));
        const start = req.afterId ? all.findIndex((m) => m.id === req.afterId) + 1 : 0;
        const page = all.slice(start, start + 2);
        return { messages: page, nextAfterId: start + 2 < all.length ? page[page.length - 1]!.id : '' };
      }),
      recoverFolder: unary(log, 'RecoverFolder', async () => {
        this.calls.push('RecoverFolder');
        return { peers: 2, chunks: 2 ** 33, manifests: 4, bytes: 5 * 2 ** 40, files: 3, durationMs: 1234 };
      }),
      getRecoveryStatus: unary(log, 'GetRecoveryStatus', async () => {
        this.calls.push('GetRecoveryStatus');
        return { status: this.recovery };
      }),
      startRecovery: unary(log, 'StartRecovery', async () => {
        this.calls.push('StartRecovery');
        const joined = this.recovery.phase === RecoveryPhase.RECOVERY_PHASE_SYNCING;
        if (!joined) this.recovery = { ...this.recovery, phase: RecoveryPhase.RECOVERY_PHASE_SYNCING, run: this.recovery.run + 1, trigger: 'request', startedUnixMs: 1_700_000_000_000, peersTotal: 2 };
        return { status: this.recovery, joined };
      }),
      getNodeInfo: unary(log, 'GetNodeInfo', async () => {
        this.calls.push('GetNodeInfo');
        return {
          serverId: 'a'.repeat(32),
          peerAddress: '127.0.0.1:7000',
          protocolVersion: 1,
          chunkSize: 1024 * 1024,
          replicas: 3,
          writeQuorum: 2,
          backlog: { objects: 3, bytes: 3 * 2 ** 20, sent: 2 ** 33, sentBytes: 2 ** 40, failed: 1 },
          backlogPeers: [{ serverId: 'b'.repeat(32), objects: 3, bytes: 3 * 2 ** 20 }],
          lastRepair: this.lastRepair,
          garbage: { records: 2, tombstones: 2 ** 33, deleted: 7 },
        };
      }),
      getVaultKeyInfo: unary(log, 'GetVaultKeyInfo', async () => {
        this.calls.push('GetVaultKeyInfo');
        return { keyFingerprint: this.keyFingerprint, createdUnixMs: 1_700_000_000_000, previousFingerprints: [] };
      }),
      rotateVaultKey: unary(log, 'RotateVaultKey', async () => {
        this.calls.push('RotateVaultKey');
        return { rotation: this.rotate(0) };
      }),
      shredFile: unary(log, 'ShredFile', async (req) => {
        this.calls.push('ShredFile');
        const hit = this.history(req.path).filter((v) => req.version === undefined || v.info.version === req.version);
        if (hit.length === 0) throw new NotFoundError('no such file');
        for (const v of hit) (v as { removed?: boolean }).removed = true;
        return { versionsRemoved: hit.length, rotation: this.rotate(hit.length) };
      }),
    };
  }

  /** Fingerprint of the fake vault key; each rotation changes it. */
  keyFingerprint = '0123456789abcdef';
  private rotate(shredded: number) {
    const retired = this.keyFingerprint;
    this.keyFingerprint = createHash('sha256').update(retired).digest('hex').slice(0, 16);
    return { keyFingerprint: this.keyFingerprint, retiredFingerprints: [retired], manifestsRewritten: 2, versionsShredded: shredded, durationMs: 12, notice: 'write down the new recovery key' };
  }
}

/** A response as the HTTP client saw it. */
export interface HttpResult {
  /** Status code. */
  status: number;
  /** Response headers. */
  headers: http.IncomingHttpHeaders;
  /** Whole body (tests keep bodies small, or at most the 40 MiB round trip). */
  body: Buffer;
}

/** Sends one request with the path exactly as given; `body` is written in pieces, with backpressure. */
export function request(port: number, method: string, path: string, opts: { body?: Buffer | Iterable<Buffer>; headers?: http.OutgoingHttpHeaders } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: opts.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    const body = opts.body;
    if (body === undefined) {
      req.end();
      return;
    }
    if (Buffer.isBuffer(body)) {
      req.end(body);
      return;
    }
    const it = body[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        const r = it.next();
        if (r.done) {
          req.end();
          return;
        }
        if (!req.write(r.value)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

/** The JSON body of a response. */
export function json(r: HttpResult): any {
  return JSON.parse(r.body.toString('utf8'));
}

/** Deterministic bytes from a seed (mulberry32), so failures reproduce. */
export function seeded(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let a = seed >>> 0;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.writeUInt32LE((t ^ (t >>> 14)) >>> 0, i);
  }
  for (; i < size; i++) out[i] = (seed + i * 31) & 0xff;
  return out;
}

/** Waits until `check()` holds, polling, for at most `ms`. */
export async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
