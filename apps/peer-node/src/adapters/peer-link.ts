/**
 * The client side of the peer protocol: one PeerLink per known peer address keeps a Handshake control
 * stream open (reconnecting with backoff) and opens StoreChunk, GetFile and SyncFolder streams on demand.
 * Links dial over TLS and authenticate the peer in the Handshake (domain/handshake.ts); the session token
 * the peer issues is added to every other call by one interceptor (`sessionInterceptor`).
 */
import { type KeyObject } from 'node:crypto';
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
  type FolderSummary as WireFolderSummary,
} from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { OBJECT_KINDS, type ObjectKind, type ReplicaSession, type StoredObject, type SyncOptions, type SyncResult, type SyncSink } from '../domain/ports';
import type { FolderSummary } from '../domain/summary';
import { CAPABILITIES, PROTOCOL_VERSION, REQUIRED_CAPABILITIES, SESSION_METADATA_KEY } from '../domain/protocol';
import { checkClaim, checkCompatible, checkProof, membershipProof, newNonce, PROOF_CONTEXT, signTranscript, transcript, WELCOME_CONTEXT, type TranscriptInput } from '../domain/handshake';
import { fromWire, toWire } from './kinds';
import { peerClientCredentials, PEER_CHANNEL_OPTIONS, type PeerClientCredentials } from './tls';
import { objectIdOf } from '../domain/object-id';

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
  /** The handshake completed (accepted); the host may stop a link that duplicates another. */
  onConnected(link: PeerLink): void;
  /** Every step after the handshake (heartbeats, messages). Throws on a malformed step: the link drops the stream. */
  onControl(link: PeerLink, step: HandshakeResponse['step']): void;
  /** This node's keys and the network secret, for the Handshake. */
  readonly auth: LinkAuth;
  /** How long a call waits for the link's session before it fails UNAVAILABLE (default SESSION_WAIT_MS). */
  readonly sessionWaitMs?: number;
  /** How long the peer has for each answer of the handshake, welcome then accepted (default HANDSHAKE_STEP_MS). */
  readonly handshakeStepMs?: number;
}

/** What a link proves with. */
export interface LinkAuth {
  /** Raw Ed25519 public key behind this node's server ID. */
  publicKey: Buffer;
  privateKey: KeyObject;
  /** The network secret shared by all members. */
  networkSecret: Buffer;
}

/** How long a call waits by default for the link's session before it fails UNAVAILABLE. */
export const SESSION_WAIT_MS = 10_000;
/**
 * How long the peer has for each answer of the handshake: Welcome after our Hello, Accepted after our Proof.
 * Past it the control stream is dropped and dialed again: a peer whose TLS accepted but whose process froze
 * would otherwise hold the link until the HTTP/2 keepalive (~40 s).
 */
export const HANDSHAKE_STEP_MS = 15_000;
/** Delay before dialing again a peer that failed authentication or refused ours. */
const REFUSED_RETRY_MS = 30_000;


/** One peer address and the streams to it. */
export class PeerLink {
  readonly client: PeerServiceClient;
  serverId = '';
  /** The address the peer advertises (from its welcome); may differ from the address dialed. */
  advertised = '';
  /** The capabilities the peer announced in its welcome. */
  capabilities: string[] = [];
  state: LinkState = 'connecting';
  lastSeen = 0;
  private call: grpc.ClientDuplexStream<HandshakeRequest, HandshakeResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoffMs = 250;
  private stopped = false;
  private readonly tls: PeerClientCredentials;
  /** The session token of the current control stream; undefined while not authenticated. */
  private session: string | undefined;
  private sessionWaiters: ((token: string | undefined) => void)[] = [];

  constructor(
    readonly address: string,
    readonly host: LinkHost,
  ) {
    this.tls = peerClientCredentials();
    this.client = createClient(PeerServiceClient, address, this.tls.credentials, { ...PEER_CHANNEL_OPTIONS, interceptors: [this.sessionInterceptor] });
  }

  /**
   * Adds the session token to every call but Handshake. A call started before the link is authenticated
   * waits for it (up to `host.sessionWaitMs`), then fails UNAVAILABLE. The one place the token is attached, so
   * the call sites need no change.
   */
  private readonly sessionInterceptor: grpc.Interceptor = (options, nextCall) => {
    if (options.method_definition.path.endsWith('/Handshake')) return new grpc.InterceptingCall(nextCall(options));
    const call: grpc.InterceptingCall = new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        void this.waitForSession(this.host.sessionWaitMs ?? SESSION_WAIT_MS).then((token) => {
          if (token) metadata.set(SESSION_METADATA_KEY, token);
          next(metadata, listener);
          if (!token) call.cancelWithStatus(grpc.status.UNAVAILABLE, `peer ${this.address} is not connected (no authenticated session)`);
        });
      },
    });
    return call;
  };

  /** The session token, waiting up to `ms` for one; undefined if none came. */
  private waitForSession(ms: number): Promise<string | undefined> {
    if (this.session || this.stopped) return Promise.resolve(this.session);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ms);
      const done = (token: string | undefined) => {
        clearTimeout(timer);
        this.sessionWaiters = this.sessionWaiters.filter((w) => w !== done);
        resolve(token);
      };
      this.sessionWaiters.push(done);
    });
  }

  private setSession(token: string | undefined): void {
    this.session = token;
    if (token) for (const w of this.sessionWaiters.slice()) w(token);
  }

  /** Starts (and keeps) the control stream. */
  start(): void {
    this.connect();
  }

  /** Closes everything; no more reconnects. */
  stop(): void {
    this.stopped = true;
    this.setSession(undefined);
    for (const w of this.sessionWaiters.slice()) w(undefined);
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.client.close();
  }

  /**
   * Abandons the link's connection (its stream went silent: a black-holed path or a frozen peer) and dials
   * again. Every call open on the link ends UNAVAILABLE at once (so StoreChunk resumes, reads try another
   * replica, syncs retry) instead of waiting for the HTTP/2 keepalive, and the redial opens a new
   * connection: the dead one is destroyed, not reused. Returns how many connections were dropped.
   */
  reconnect(): number {
    const dropped = this.tls.dropConnections();
    this.call?.cancel();
    return dropped;
  }

  /** Writes one step on the open control stream, with backpressure; UnavailableError when not connected. */
  async sendControl(msg: HandshakeRequest, signal?: AbortSignal): Promise<void> {
    const call = this.call;
    if (!call || this.state !== 'connected') throw new UnavailableError(`peer ${this.serverId || this.address} is not connected`);
    await writeMessage(call, msg, signal);
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
    const auth = this.host.auth;
    const hello = {
      protocolVersion: PROTOCOL_VERSION,
      serverId: this.host.serverId,
      advertiseAddress: this.host.advertiseAddress,
      knownPeers: [], // sent in the first heartbeat, once the peer is authenticated
      publicKey: auth.publicKey,
      nonce: newNonce(),
      capabilities: [...CAPABILITIES],
    };
    let phase: 'welcome' | 'accepted' | 'open' = 'welcome';
    let refused = false;
    let welcomed = false;
    let beat: NodeJS.Timeout | undefined;
    let stepTimer: NodeJS.Timeout | undefined;
    /** (Re)starts the wait for the peer's next handshake answer. */
    const awaitStep = (what: string) => {
      if (stepTimer) clearTimeout(stepTimer);
      stepTimer = setTimeout(() => {
        // Still connecting (peer down, TLS not through): the call waits for the channel as before.
        if (this.client.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY) return awaitStep(what);
        log.warn({ waitingFor: what }, 'peer did not answer the handshake in time; dialing again');
        call.cancel();
      }, this.host.handshakeStepMs ?? HANDSHAKE_STEP_MS);
      stepTimer.unref();
    };
    const finish = (why: string, err?: grpc.ServiceError) => {
      if (this.call !== call) return;
      this.call = undefined;
      this.setSession(undefined);
      if (beat) clearInterval(beat);
      if (stepTimer) clearTimeout(stepTimer);
      if (this.state !== 'self') this.state = 'disconnected';
      if (welcomed) log.warn({ why, code: err?.code }, 'peer disconnected');
      let delay = this.backoffMs;
      const code = err?.code;
      if (code === grpc.status.FAILED_PRECONDITION || code === grpc.status.UNAUTHENTICATED || code === grpc.status.PERMISSION_DENIED) {
        log.error({ code, err: err?.details }, 'peer refused the handshake');
        delay = REFUSED_RETRY_MS;
      }
      if (refused) delay = REFUSED_RETRY_MS;
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
      this.retry(delay);
    };
    /** This side refuses the peer: it gets no Proof, the link is never marked connected. */
    const refuse = (err: unknown, peerId: string) => {
      refused = true;
      log.error({ peerId, code: (err as { code?: string }).code, err: (err as Error).message }, 'refused the peer: authentication failed');
      call.cancel();
    };
    const onWelcome = (w: NonNullable<HandshakeResponse['step']> & { $case: 'welcome' }) => {
      const v = w.value;
      const fingerprint = this.tls.peerFingerprint();
      const t: TranscriptInput = {
        dialer: hello,
        responder: { serverId: v.serverId, publicKey: v.publicKey, nonce: v.nonce, protocolVersion: v.protocolVersion, capabilities: v.capabilities },
        certFingerprint: fingerprint ?? Buffer.alloc(0),
      };
      try {
        checkCompatible(v, PROTOCOL_VERSION, REQUIRED_CAPABILITIES);
        checkClaim(v);
        if (!fingerprint) throw new InvalidArgumentError('no TLS certificate seen on the connection');
        checkProof(v.publicKey, transcript(WELCOME_CONTEXT, t), v.signature, v.membershipProof, auth.networkSecret);
      } catch (err) {
        return refuse(err, v.serverId);
      }
      if (v.serverId === this.host.serverId) {
        this.state = 'self';
        this.serverId = v.serverId;
        call.cancel();
        return;
      }
      const proofT = transcript(PROOF_CONTEXT, t);
      call.write({ step: { $case: 'proof', value: { signature: signTranscript(auth.privateKey, proofT), membershipProof: membershipProof(auth.networkSecret, proofT) } } });
      phase = 'accepted';
      this.serverId = v.serverId;
      this.advertised = v.advertiseAddress;
      this.capabilities = v.capabilities;
      awaitStep('accepted');
    };
    const onAccepted = (token: string) => {
      if (stepTimer) clearTimeout(stepTimer);
      phase = 'open';
      welcomed = true;
      this.state = 'connected';
      this.backoffMs = 250;
      this.setSession(token);
      log.info({ peerId: this.serverId }, 'peer connected');
      const sendBeat = () => call.write({ step: { $case: 'heartbeat', value: { sentUnixMs: Date.now(), knownPeers: this.host.knownPeers(), leaving: false } } });
      sendBeat();
      beat = setInterval(sendBeat, this.host.heartbeatMs);
      beat.unref();
      // Silence is judged by the network's membership tick, which calls reconnect().
      this.host.onConnected(this);
    };
    call.on('data', (msg: HandshakeResponse) => {
      this.lastSeen = Date.now();
      const step = msg.step;
      if (phase === 'welcome') {
        if (step?.$case !== 'welcome') return refuse(new InvalidArgumentError('first answer was not welcome'), '');
        onWelcome(step);
      } else if (phase === 'accepted') {
        if (step?.$case !== 'accepted' || !step.value.sessionToken) return refuse(new InvalidArgumentError('answer to the proof was not accepted'), this.serverId);
        onAccepted(step.value.sessionToken);
      } else {
        try {
          this.host.onControl(this, step);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'malformed control step from peer; dropping the stream');
          call.cancel();
        }
      }
    });
    call.on('error', (err: grpc.ServiceError) => finish('error', err));
    call.on('end', () => finish('end'));
    call.write({ step: { $case: 'hello', value: hello } });
    awaitStep('welcome');
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
            const byKind: Record<ObjectKind, string[]> = { chunk: [], manifest: [], gc: [] };
            for (const o of step.value.objects) byKind[fromWire(o.kind)].push(o.id);
            result.offered += step.value.objects.length;
            for (const kind of OBJECT_KINDS) {
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
            if (objectIdOf(o.data) !== o.id) throw new DataLossError(`peer sent bytes that do not match ${o.id}`);
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
