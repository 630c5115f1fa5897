/**
 * The client side of the peer protocol: one PeerLink per known peer address keeps a Handshake control
 * stream open (reconnecting with backoff) and opens StoreChunk, GetFile and SyncFolder streams on demand.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { bindSignal, callMetadata, createClient, DataLossError, fromStatus, grpcCallOptions, InvalidArgumentError, writeMessage, CancelledError } from '@distri-vault/shared';
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
  type FolderSummary as WireFolderSummary,
} from '@distri-vault/shared/generated/vault/peer/v1/peer';
import type { ObjectKind, ReplicaSession, StoredObject, SyncOptions, SyncResult, SyncSink } from '../domain/ports';
import type { FolderSummary } from '../domain/summary';
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

  /**
   * Runs SyncFolder as the requester: fetch what `sink` says is missing; verify everything received.
   * With `options.summary`, the responder first names the buckets it covers and lists only those.
   * Up to `window` received objects are stored at once.
   */
  async syncFolder(folder: string, sink: SyncSink, signal?: AbortSignal, options: SyncOptions = {}): Promise<SyncResult> {
    const call: grpc.ClientDuplexStream<SyncFolderRequest, SyncFolderResponse> = this.client.syncFolder(grpcCallOptions({}));
    const unbind = bindSignal(call, signal);
    const wanted = new Set<string>();
    const result: SyncResult = { offered: 0, fetched: 0, bytes: 0, missing: 0 };
    let inventoryDone = false;
    let covered = !options.summary;
    let ended = false;
    const storing = new Set<Promise<void>>();
    let storeFailure: unknown;
    const maybeEnd = () => {
      if (inventoryDone && wanted.size === 0 && storing.size === 0 && !ended && storeFailure === undefined) {
        ended = true;
        call.end();
      }
    };
    try {
      const open = options.summary ? { folder, summary: summaryToWire(options.summary) } : { folder };
      call.write({ step: { $case: 'open', value: open } });
      for await (const msg of call as AsyncIterable<SyncFolderResponse>) {
        if (storeFailure !== undefined) throw storeFailure;
        const step = msg.step;
        if (!covered && step?.$case !== 'coverage') throw new InvalidArgumentError('SyncFolder: coverage must come first when a summary was sent');
        switch (step?.$case) {
          case 'coverage': {
            if (covered) throw new InvalidArgumentError('SyncFolder: unexpected coverage');
            covered = true;
            const buckets = step.value.buckets.map((b) => ({ kind: fromWire(b.kind), prefix: b.prefix }));
            try {
              sink.coverage?.(step.value.prefixBits, buckets);
            } catch (err) {
              throw new InvalidArgumentError(`SyncFolder coverage: ${(err as Error).message}`);
            }
            result.coveredBuckets = buckets.length;
            break;
          }
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
            while (storing.size >= this.host.window) await Promise.race(storing);
            if (storeFailure !== undefined) throw storeFailure;
            const p: Promise<void> = sink.accept({ kind, id: o.id, data: o.data }, signal).then(
              () => {
                storing.delete(p);
                wanted.delete(key);
                result.fetched++;
                result.bytes += o.data.length;
                maybeEnd();
              },
              (err: unknown) => {
                storing.delete(p);
                storeFailure ??= err;
                call.cancel();
              },
            );
            storing.add(p);
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
      while (storing.size) await Promise.race(storing);
      if (storeFailure !== undefined) throw storeFailure;
      if (!ended) throw new DataLossError('peer ended SyncFolder before it was complete');
      return result;
    } catch (err) {
      call.cancel();
      while (storing.size) await Promise.race(storing).catch(() => undefined);
      throw fromStatus(storeFailure ?? err, `SyncFolder with ${this.address}`);
    } finally {
      unbind();
    }
  }
}

/** A domain summary as a wire FolderSummary. */
export function summaryToWire(s: FolderSummary): WireFolderSummary {
  return { prefixBits: s.bits, buckets: s.buckets.map((b) => ({ kind: toWire(b.kind), prefix: b.prefix, count: b.count, digest: b.digest })) };
}

/** A wire FolderSummary as a domain summary (checked later by checkSummary). */
export function summaryFromWire(s: WireFolderSummary): FolderSummary {
  return { bits: s.prefixBits, buckets: s.buckets.map((b) => ({ kind: fromWire(b.kind), prefix: b.prefix, count: b.count, digest: Buffer.from(b.digest) })) };
}

/** A StoreChunk stream: objects sent in order, each acknowledged once durable on the peer. */
class StoreSession implements ReplicaSession {
  private readonly pending: { id: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly slotWaiters: (() => void)[] = [];
  private failure: unknown;
  private done: Promise<void>;
  private window = 1;

  private constructor(
    readonly peerId: string,
    private readonly call: grpc.ClientDuplexStream<StoreChunkRequest, StoreChunkResponse>,
    private readonly unbind: () => void,
  ) {
    this.done = new Promise<void>((resolve) => {
      call.on('status', () => resolve());
    });
  }

  static async open(link: PeerLink, folder: string, signal?: AbortSignal): Promise<StoreSession> {
    const call = link.client.storeChunk(grpcCallOptions({}));
    const unbind = bindSignal(call, signal);
    const s = new StoreSession(link.serverId, call, unbind);
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      call.on('data', (msg: StoreChunkResponse) => {
        const step = msg.step;
        if (!ready) {
          if (step?.$case !== 'ready') return s.fail(new InvalidArgumentError('StoreChunk: first answer was not ready'));
          ready = true;
          s.window = Math.max(1, Math.min(step.value.window, 64));
          resolve();
          return;
        }
        if (step?.$case !== 'ack') return s.fail(new InvalidArgumentError('StoreChunk: unexpected frame'));
        const head = s.pending.shift();
        if (!head || head.id !== step.value.id) return s.fail(new DataLossError('StoreChunk: acknowledgement out of order'));
        head.resolve();
        s.slotWaiters.shift()?.();
      });
      call.on('error', (err) => {
        const e = fromStatus(err, `StoreChunk to ${link.address}`);
        s.fail(e);
        reject(e);
      });
      call.on('end', () => {
        if (s.pending.length) s.fail(new DataLossError(`StoreChunk to ${link.address} ended with ${s.pending.length} objects unacknowledged`));
        if (!ready) reject(new DataLossError(`StoreChunk to ${link.address} ended before it was ready`));
      });
      call.write({ step: { $case: 'open', value: { senderId: link.host.serverId, folder } } });
    });
    return s;
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    for (const p of this.pending.splice(0)) p.reject(this.failure);
    for (const w of this.slotWaiters.splice(0)) w();
    this.call.cancel();
  }

  async send(obj: StoredObject, signal?: AbortSignal): Promise<void> {
    while (!this.failure && this.pending.length >= this.window) await new Promise<void>((r) => this.slotWaiters.push(r));
    if (this.failure) throw this.failure;
    if (signal?.aborted) throw new CancelledError('replication cancelled');
    const acked = new Promise<void>((resolve, reject) => this.pending.push({ id: obj.id, resolve, reject }));
    await writeMessage(this.call, { step: { $case: 'object', value: { kind: toWire(obj.kind), id: obj.id, data: obj.data } } }, signal);
    return acked;
  }

  async close(): Promise<void> {
    if (this.failure) throw this.failure;
    this.call.end();
    await this.done;
    await new Promise<void>((r) => setImmediate(r)); // an error status is reported just after 'status'
    this.unbind();
    if (this.failure) throw this.failure;
  }

  abort(): void {
    this.unbind();
    this.call.cancel();
  }
}
