/**
 * The client side of the peer protocol: one PeerLink per known peer address keeps a Handshake control
 * stream open (reconnecting with backoff) and opens StoreChunk, GetFile and SyncFolder streams on demand.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { bindSignal, callMetadata, createClient, DataLossError, fromStatus, grpcCallOptions, InvalidArgumentError, writeMessage, CancelledError, UnavailableError } from '@distri-vault/shared';
import {
  PeerServiceClient,
  type GetFileResponse,
  type HandshakeRequest,
  type HandshakeResponse,
  type PeerAddress,
  type StoreChunkRequest,
  type StoreChunkResponse,
  type SyncFolderRequest,
  type SyncFolderResponse,
} from '@distri-vault/shared/generated/vault/peer/v1/peer';
import type { ObjectKind, ReplicaSession, StoredObject, SyncResult, SyncSink } from '../domain/ports';
import { PROTOCOL_VERSION } from '../domain/protocol';
import { fromWire, toWire } from './kinds';

/** Connection state of a link. */
export type LinkState = 'connecting' | 'connected' | 'disconnected' | 'self';

/** What a link needs from the node. */
export interface LinkHost {
  readonly serverId: string;
  readonly advertiseAddress: string;
  readonly heartbeatMs: number;
  readonly window: number;
  readonly log: Logger;
  knownPeers(): PeerAddress[];
  learn(peers: PeerAddress[]): void;
  onConnected(link: PeerLink): void;
}

const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One peer address and the streams to it. */
export class PeerLink {
  readonly client: PeerServiceClient;
  serverId = '';
  state: LinkState = 'connecting';
  lastSeen = 0;
  private call: grpc.ClientDuplexStream<HandshakeRequest, HandshakeResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoffMs = 250;
  private stopped = false;

  constructor(
    readonly address: string,
    readonly host: LinkHost,
  ) {
    this.client = createClient(PeerServiceClient, address);
  }

  /** Starts (and keeps) the control stream. */
  start(): void {
    this.connect();
  }

  /** Closes everything; no more reconnects. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.client.close();
  }

  private retry(delayMs: number): void {
    if (this.stopped || this.state === 'self') return;
    this.timer = setTimeout(() => this.connect(), delayMs);
    this.timer.unref();
  }

  private connect(): void {
    if (this.stopped) return;
    const log = this.host.log.child({ peer: this.address });
    const call = this.client.handshake(callMetadata({ waitForReady: true }), grpcCallOptions({}));
    this.call = call;
    let welcomed = false;
    let beat: NodeJS.Timeout | undefined;
    let watchdog: NodeJS.Timeout | undefined;
    const finish = (why: string, err?: grpc.ServiceError) => {
      if (this.call !== call) return;
      this.call = undefined;
      if (beat) clearInterval(beat);
      if (watchdog) clearInterval(watchdog);
      if (this.state !== 'self') this.state = 'disconnected';
      if (welcomed) log.warn({ why, code: err?.code }, 'peer disconnected');
      let delay = this.backoffMs;
      if (err?.code === grpc.status.FAILED_PRECONDITION) {
        log.error({ err: err.details }, 'peer refused the handshake');
        delay = 30_000;
      }
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
      this.retry(delay);
    };
    call.on('data', (msg: HandshakeResponse) => {
      this.lastSeen = Date.now();
      const step = msg.step;
      if (!welcomed) {
        if (step?.$case !== 'welcome') {
          call.cancel();
          return;
        }
        const w = step.value;
        if (w.serverId === this.host.serverId) {
          this.state = 'self';
          this.serverId = w.serverId;
          call.cancel();
          return;
        }
        welcomed = true;
        this.serverId = w.serverId;
        this.state = 'connected';
        this.backoffMs = 250;
        this.host.learn(w.knownPeers);
        log.info({ peerId: w.serverId }, 'peer connected');
        beat = setInterval(() => {
          call.write({ step: { $case: 'heartbeat', value: { sentUnixMs: Date.now(), knownPeers: this.host.knownPeers() } } });
        }, this.host.heartbeatMs);
        beat.unref();
        watchdog = setInterval(() => {
          if (Date.now() - this.lastSeen > 4 * this.host.heartbeatMs) {
            log.warn('peer silent; reconnecting');
            call.cancel();
          }
        }, this.host.heartbeatMs);
        watchdog.unref();
        this.host.onConnected(this);
      } else if (step?.$case === 'heartbeat') {
        this.host.learn(step.value.knownPeers);
      }
    });
    call.on('error', (err: grpc.ServiceError) => finish('error', err));
    call.on('end', () => finish('end'));
    call.write({
      step: {
        $case: 'hello',
        value: { protocolVersion: PROTOCOL_VERSION, serverId: this.host.serverId, advertiseAddress: this.host.advertiseAddress, knownPeers: this.host.knownPeers() },
      },
    });
  }

  /** Opens a StoreChunk stream for `folder`. */
  async openReplica(folder: string, signal?: AbortSignal): Promise<ReplicaSession> {
    return StoreSession.open(this, folder, signal);
  }

  /** Fetches one object; null if the peer does not have it. */
  async fetch(folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<Buffer | null> {
    const call = this.client.getFile(grpcCallOptions({ timeoutMs: 30_000 }));
    const unbind = bindSignal(call, signal);
    try {
      call.write({ folder, objects: [{ kind: toWire(kind), id }] });
      call.end();
      for await (const msg of call as AsyncIterable<GetFileResponse>) {
        const step = msg.step;
        if (step?.$case === 'missing') return null;
        if (step?.$case === 'object') {
          if (step.value.id !== id || fromWire(step.value.kind) !== kind) throw new DataLossError(`peer ${this.serverId} answered with another object`);
          return step.value.data;
        }
      }
      throw new DataLossError(`peer ${this.serverId} closed GetFile without an answer`);
    } catch (err) {
      throw fromStatus(err, `GetFile from ${this.address}`);
    } finally {
      unbind();
      call.cancel();
    }
  }

  /** Runs SyncFolder as the requester: fetch what `sink` says is missing; verify everything received. */
  async syncFolder(folder: string, sink: SyncSink, signal?: AbortSignal): Promise<SyncResult> {
    const call: grpc.ClientDuplexStream<SyncFolderRequest, SyncFolderResponse> = this.client.syncFolder(grpcCallOptions({}));
    const unbind = bindSignal(call, signal);
    const wanted = new Set<string>();
    const result: SyncResult = { offered: 0, fetched: 0, bytes: 0, missing: 0 };
    let inventoryDone = false;
    let ended = false;
    const maybeEnd = () => {
      if (inventoryDone && wanted.size === 0 && !ended) {
        ended = true;
        call.end();
      }
    };
    try {
      call.write({ step: { $case: 'open', value: { folder } } });
      for await (const msg of call as AsyncIterable<SyncFolderResponse>) {
        const step = msg.step;
        switch (step?.$case) {
          case 'inventory': {
            if (inventoryDone) throw new InvalidArgumentError('inventory after its end');
            const byKind: Record<ObjectKind, string[]> = { chunk: [], manifest: [] };
            for (const o of step.value.objects) byKind[fromWire(o.kind)].push(o.id);
            result.offered += step.value.objects.length;
            for (const kind of ['chunk', 'manifest'] as const) {
              if (!byKind[kind].length) continue;
              const missing = await sink.missing(kind, byKind[kind], signal);
              if (!missing.length) continue;
              missing.forEach((id) => wanted.add(`${kind}:${id}`));
              await writeMessage(call, { step: { $case: 'want', value: { objects: missing.map((id) => ({ kind: toWire(kind), id })) } } }, signal);
            }
            break;
          }
          case 'inventoryEnd':
            inventoryDone = true;
            break;
          case 'object': {
            const o = step.value;
            const kind = fromWire(o.kind);
            const key = `${kind}:${o.id}`;
            if (!wanted.has(key)) throw new InvalidArgumentError(`peer sent an object that was not asked for: ${o.id}`);
            if (sha256hex(o.data) !== o.id) throw new DataLossError(`peer sent bytes that do not match ${o.id}`);
            await sink.accept({ kind, id: o.id, data: o.data }, signal);
            wanted.delete(key);
            result.fetched++;
            result.bytes += o.data.length;
            break;
          }
          case 'missing': {
            wanted.delete(`${fromWire(step.value.kind)}:${step.value.id}`);
            result.missing++;
            break;
          }
          default:
            throw new InvalidArgumentError('malformed SyncFolder frame');
        }
        maybeEnd();
      }
      if (!ended) throw new DataLossError('peer ended SyncFolder before it was complete');
      return result;
    } catch (err) {
      call.cancel();
      throw fromStatus(err, `SyncFolder with ${this.address}`);
    } finally {
      unbind();
    }
  }
}

/** gRPC codes after which a StoreChunk stream is reopened and its unacknowledged objects resent. */
const RESUMABLE = new Set<number>([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DEADLINE_EXCEEDED, grpc.status.ABORTED]);

/** Settings of StoreChunk resumption. */
export const STORE_RESUME = { attempts: 5, firstDelayMs: 200, maxDelayMs: 3000 };

interface Pending {
  obj: StoredObject;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * A StoreChunk stream: objects sent in order, each acknowledged once durable on the peer, at most
 * `window` unacknowledged. When the stream breaks (peer restart, network blip) it is reopened and only
 * the objects not yet acknowledged are resent (their bytes are kept until acknowledged: at most the
 * window); acknowledged ones never are. After STORE_RESUME.attempts reopenings without progress, or on
 * a status that retrying cannot fix (bad hash, refused), the session fails.
 */
class StoreSession implements ReplicaSession {
  private readonly pending: Pending[] = [];
  private readonly waiters: (() => void)[] = [];
  private call: grpc.ClientDuplexStream<StoreChunkRequest, StoreChunkResponse> | undefined;
  private unbind: () => void = () => undefined;
  private failure: unknown;
  private window = 1;
  /** Set while a stream is being (re)opened: sends wait. */
  private opening: Promise<void> | undefined;
  private attempts = 0;
  private closing = false;
  private statusSeen: Promise<void> = Promise.resolve();
  /** Streams opened so far (1 + reopenings), for logs and tests. */
  streams = 0;

  private constructor(
    private readonly link: PeerLink,
    private readonly folder: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  get peerId(): string {
    return this.link.serverId;
  }

  static async open(link: PeerLink, folder: string, signal?: AbortSignal): Promise<StoreSession> {
    const s = new StoreSession(link, folder, signal);
    s.opening = s.connect();
    try {
      await s.opening;
    } finally {
      s.opening = undefined;
    }
    return s;
  }

  /** Opens one stream, waits for its ready, then resends every unacknowledged object on it. */
  private connect(): Promise<void> {
    this.streams++;
    const call = this.link.client.storeChunk(grpcCallOptions({}));
    this.call = call;
    this.unbind();
    this.unbind = bindSignal(call, this.signal);
    let settled = false;
    let resolveStatus!: () => void;
    this.statusSeen = new Promise<void>((r) => (resolveStatus = r));
    const ready = new Promise<void>((resolve, reject) => {
      let isReady = false;
      call.on('data', (msg: StoreChunkResponse) => {
        if (this.call !== call) return;
        const step = msg.step;
        if (!isReady) {
          if (step?.$case !== 'ready') return this.fail(new InvalidArgumentError('StoreChunk: first answer was not ready'));
          isReady = true;
          this.window = Math.max(1, Math.min(step.value.window, 64));
          resolve();
          return;
        }
        if (step?.$case !== 'ack') return this.fail(new InvalidArgumentError('StoreChunk: unexpected frame'));
        const head = this.pending[0];
        if (!head || head.obj.id !== step.value.id) return this.fail(new DataLossError('StoreChunk: acknowledgement out of order'));
        this.pending.shift();
        this.attempts = 0;
        head.resolve();
        this.waiters.shift()?.();
      });
      const broken = (err: unknown, code: number | undefined) => {
        if (settled) return;
        settled = true;
        if (this.call !== call) return;
        if (!isReady) reject(err);
        else void this.resume(err, code);
      };
      call.on('error', (err: grpc.ServiceError) => broken(fromStatus(err, `StoreChunk to ${this.link.address}`), err.code));
      call.on('end', () => {
        // An error status is reported after 'end': let it win when there is one.
        setImmediate(() => {
          if (this.pending.length || !isReady) broken(new UnavailableError(`StoreChunk to ${this.link.address} ended with ${this.pending.length} objects unacknowledged`), grpc.status.UNAVAILABLE);
        });
      });
      call.on('status', () => resolveStatus());
      call.write({ step: { $case: 'open', value: { senderId: this.link.host.serverId, folder: this.folder } } });
    });
    return ready.then(async () => {
      for (const p of [...this.pending]) {
        if (this.call !== call) return;
        await writeMessage(call, { step: { $case: 'object', value: { kind: toWire(p.obj.kind), id: p.obj.id, data: p.obj.data } } }, this.signal).catch(() => undefined);
      }
    }).catch(async (err: unknown) => {
      // Not even ready: retry as a break when it is worth it, else fail.
      const code = (err as { cause?: { code?: number } }).cause?.code;
      if (this.streams > 1 && !this.signal?.aborted && code !== undefined && RESUMABLE.has(code) && this.attempts < STORE_RESUME.attempts) {
        return this.reconnectAfterDelay(err);
      }
      throw err;
    });
  }

  private async reconnectAfterDelay(err: unknown): Promise<void> {
    this.attempts++;
    const delay = Math.min(STORE_RESUME.firstDelayMs * 2 ** (this.attempts - 1), STORE_RESUME.maxDelayMs);
    this.link.host.log.warn({ peer: this.link.serverId, folder: this.folder, unacked: this.pending.length, attempt: this.attempts, err: (err as Error).message }, 'StoreChunk stream broke; resuming');
    await new Promise((r) => setTimeout(r, delay));
    if (this.failure) throw this.failure;
    if (this.signal?.aborted) throw new CancelledError('replication cancelled');
    return this.connect();
  }

  /** A stream broke after it was ready: reopen it and resend what is unacknowledged, or fail. */
  private async resume(err: unknown, code: number | undefined): Promise<void> {
    this.call?.cancel();
    this.call = undefined;
    if (this.failure) return;
    const resumable = code !== undefined && RESUMABLE.has(code) && !this.signal?.aborted && this.attempts < STORE_RESUME.attempts;
    if (!resumable) return this.fail(err);
    if (this.pending.length === 0 && this.closing) return; // nothing lost; close() sees the status
    const opening = this.reconnectAfterDelay(err);
    this.opening = opening;
    try {
      await opening;
    } catch (e) {
      this.fail(e);
    } finally {
      if (this.opening === opening) this.opening = undefined;
      for (const w of this.waiters.splice(0)) w();
    }
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    for (const p of this.pending.splice(0)) p.reject(this.failure);
    for (const w of this.waiters.splice(0)) w();
    this.call?.cancel();
    this.unbind();
  }

  async send(obj: StoredObject, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (signal?.aborted) throw new CancelledError('replication cancelled');
      if (this.opening) {
        await this.opening.catch(() => undefined);
        continue;
      }
      if (this.pending.length < this.window && this.call) break;
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const acked = new Promise<void>((resolve, reject) => this.pending.push({ obj, resolve, reject }));
    // A write into a stream that just broke is harmless: the object is pending and gets resent.
    await writeMessage(this.call, { step: { $case: 'object', value: { kind: toWire(obj.kind), id: obj.id, data: obj.data } } }, signal).catch(() => undefined);
    return acked;
  }

  async close(): Promise<void> {
    this.closing = true;
    while (!this.failure && (this.pending.length || this.opening)) {
      if (this.opening) await this.opening.catch(() => undefined);
      else await new Promise<void>((r) => this.waiters.push(r));
    }
    if (this.failure) throw this.failure;
    this.call?.end();
    await this.statusSeen;
    await new Promise<void>((r) => setImmediate(r)); // an error status is reported just after 'status'
    this.unbind();
    if (this.failure) throw this.failure;
  }

  abort(): void {
    this.closing = true;
    this.unbind();
    this.call?.cancel();
  }
}
