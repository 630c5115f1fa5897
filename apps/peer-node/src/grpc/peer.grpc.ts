/**
 * The server side of PeerService: what this node does when other nodes talk to it. Thin: it checks
 * protocol steps and frames, and hands work to the node's storage and network.
 */
import { type KeyObject } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  assertObjectId,
  assertServerId,
  assertServerIdChecked,
  bidi,
  DataLossError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  messages,
  writeMessage,
} from '@distri-vault/shared';
import type {
  GetFileRequest,
  GetFileResponse,
  HandshakeRequest,
  HandshakeResponse,
  PeerServiceServer,
  StoreChunkRequest,
  StoreChunkResponse,
  SyncFolderRequest,
  SyncFolderResponse,
} from '@distri-vault/shared/generated/vault/peer/v1/peer';
import type { ObjectKey } from '@distri-vault/shared/generated/vault/common/v1/object';
import { OBJECT_KINDS, type ObjectKind, type StoragePort } from '../domain/ports';
import type { Garbage } from '../domain/garbage';
import { BucketSet, coverageFor } from '../domain/summary';
import { summaryFromWire } from '../adapters/peer-link';
import { CAPABILITIES, PROTOCOL_VERSION, REQUIRED_CAPABILITIES, SESSION_METADATA_KEY } from '../domain/protocol';
import {
  checkClaim,
  checkCompatible,
  checkProof,
  membershipProof,
  newNonce,
  PROOF_CONTEXT,
  signTranscript,
  transcript,
  WELCOME_CONTEXT,
  type ReplayCache,
  type SessionTable,
  type TranscriptInput,
} from '../domain/handshake';
import type { PeerNetwork } from '../adapters/network';
import { fromWire, toWire } from '../adapters/kinds';
import { objectIdOf } from '../domain/object-id';

/** What the peer server needs. */
export interface PeerServerDeps {
  log: Logger;
  storage: StoragePort;
  /** Tombstones: objects a GC record names are acknowledged without being stored; records are checked and applied. */
  garbage: Pick<Garbage, 'load' | 'isDead' | 'apply'>;
  network: PeerNetwork;
  /** Receive window advertised to StoreChunk senders. */
  window: number;
  /** What the Handshake needs to authenticate this node and its peers. */
  auth: PeerServerAuth;
}

/** This node's side of peer authentication. */
export interface PeerServerAuth {
  /** Raw Ed25519 public key behind this node's server ID. */
  publicKey: Buffer;
  privateKey: KeyObject;
  /** The network secret shared by all members. */
  networkSecret: Buffer;
  /** SHA-256 of this node's PeerService TLS certificate. */
  certFingerprint: Buffer;
  /** Sessions issued to authenticated peers. */
  sessions: SessionTable;
  /** Hello nonces seen recently. */
  replay: ReplayCache;
  /** How long the dialer has to send its Proof after the Welcome. */
  proofTimeoutMs?: number;
}

/** Reads the first message of a stream, or fails if the stream ends first. */
async function first<T>(it: AsyncIterator<T>, what: string): Promise<T> {
  const r = await it.next();
  if (r.done) throw new InvalidArgumentError(`${what}: stream ended before its first message`);
  return r.value;
}

/** The rest of a stream after `first`. */
function rest<T>(it: AsyncIterator<T>): AsyncIterable<T> {
  return { [Symbol.asyncIterator]: () => it };
}


/** Answers one wanted object: its bytes, or "missing" when absent or corrupt here. */
async function answer<T>(deps: PeerServerDeps, call: grpc.ServerDuplexStream<unknown, T>, folder: string, key: ObjectKey, wrap: (step: GetFileResponse['step']) => T, signal: AbortSignal) {
  const kind = fromWire(key.kind);
  assertObjectId(key.id);
  try {
    const data = await deps.storage.get(folder, kind, key.id, signal);
    await writeMessage(call, wrap({ $case: 'object', value: { kind: key.kind, id: key.id, data } }), signal);
  } catch (err) {
    if (!(err instanceof NotFoundError || err instanceof DataLossError)) throw err;
    await writeMessage(call, wrap({ $case: 'missing', value: { kind: key.kind, id: key.id } }), signal);
  }
}

/**
 * The authenticated peer of a call: the server ID its session token (metadata `x-vault-session`) was
 * issued to. UnauthenticatedError without a live token; checked before anything is read from the call.
 */
function sessionPeer(auth: PeerServerAuth, call: { metadata: grpc.Metadata }): string {
  const token = call.metadata.get(SESSION_METADATA_KEY)[0];
  const peer = typeof token === 'string' && token ? auth.sessions.peerOf(token) : undefined;
  if (!peer) throw new UnauthenticatedError('no valid peer session: authenticate with Handshake first');
  return peer;
}

/** `bidi`, for RPCs that need a session: the handler gets the authenticated peer's server ID. */
function authedBidi<Req, Res>(deps: PeerServerDeps, rpc: string, fn: (call: grpc.ServerDuplexStream<Req, Res>, signal: AbortSignal, peerId: string) => Promise<void>) {
  return bidi<Req, Res>(deps.log, rpc, async (call, signal) => fn(call, signal, sessionPeer(deps.auth, call)));
}

/** `first`, but UNAUTHENTICATED when nothing arrives within `ms`. */
async function firstWithin<T>(it: AsyncIterator<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UnauthenticatedError(`${what}: no proof within ${ms} ms`)), ms);
  });
  const next = first(it, what);
  next.catch(() => undefined); // when `late` wins, a later end of the stream must not be an unhandled rejection
  try {
    return await Promise.race([next, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Hello -> Welcome -> Proof -> Accepted (see domain/handshake.ts). Resolves with the authenticated peer's
 * Hello and its session token; throws (and the peer gets no session and nothing else) otherwise.
 */
async function authenticate(deps: PeerServerDeps, call: grpc.ServerDuplexStream<HandshakeRequest, HandshakeResponse>, it: AsyncIterator<HandshakeRequest>, signal: AbortSignal) {
  const { auth, network } = deps;
  const hello = (await first(it, 'Handshake')).step;
  if (hello?.$case !== 'hello') throw new InvalidArgumentError('Handshake: the first message must be hello');
  const h = hello.value;
  checkCompatible(h, PROTOCOL_VERSION, REQUIRED_CAPABILITIES);
  checkClaim(h);
  if (auth.replay.seen(h.nonce)) throw new UnauthenticatedError('Handshake: replayed hello (nonce seen before)');
  const nonce = newNonce();
  const t: TranscriptInput = {
    dialer: { serverId: h.serverId, publicKey: h.publicKey, nonce: h.nonce, protocolVersion: h.protocolVersion, capabilities: h.capabilities },
    responder: { serverId: network.serverId, publicKey: auth.publicKey, nonce, protocolVersion: PROTOCOL_VERSION, capabilities: CAPABILITIES },
    certFingerprint: auth.certFingerprint,
  };
  const welcomeT = transcript(WELCOME_CONTEXT, t);
  // Known peers wait for the first heartbeat after Accepted: an unauthenticated dialer learns nothing more.
  const welcome = { protocolVersion: PROTOCOL_VERSION, serverId: network.serverId, publicKey: auth.publicKey, nonce, capabilities: [...CAPABILITIES], advertiseAddress: network.advertiseAddress, knownPeers: [], signature: signTranscript(auth.privateKey, welcomeT), membershipProof: membershipProof(auth.networkSecret, welcomeT) };
  await writeMessage(call, { step: { $case: 'welcome', value: welcome } }, signal);
  const proof = (await firstWithin(it, 'Handshake', auth.proofTimeoutMs ?? 15_000)).step;
  if (proof?.$case !== 'proof') throw new UnauthenticatedError('Handshake: the second message must be proof');
  checkProof(h.publicKey, transcript(PROOF_CONTEXT, t), proof.value.signature, proof.value.membershipProof, auth.networkSecret);
  return { hello: h, token: auth.sessions.issue(h.serverId) };
}

/**
 * The control stream after authentication: heartbeats both ways until it closes. Every later step
 * (heartbeats, leave notices, messages) goes to the network, which validates it; `peerId` is authenticated.
 */
async function heartbeats(deps: PeerServerDeps, call: grpc.ServerDuplexStream<HandshakeRequest, HandshakeResponse>, it: AsyncIterator<HandshakeRequest>, hello: { serverId: string; capabilities: string[] }, signal: AbortSignal) {
  const peerId = hello.serverId;
  const beat = setInterval(() => {
    call.write({ step: { $case: 'heartbeat', value: { sentUnixMs: Date.now(), knownPeers: deps.network.knownPeers(), leaving: false } } });
  }, deps.network.heartbeatMs);
  const detach = deps.network.attachInbound(peerId, (m) => writeMessage(call, m, signal), hello.capabilities);
  try {
    for await (const msg of rest(it)) deps.network.onInboundControl(peerId, msg.step);
  } finally {
    detach();
    clearInterval(beat);
  }
}

/** Reads one wanted object: its frame, or "missing" when absent or corrupt here. */
async function lookup(deps: PeerServerDeps, folder: string, key: ObjectKey, signal: AbortSignal): Promise<SyncFolderResponse['step']> {
  fromWire(key.kind);
  assertObjectId(key.id);
  try {
    const data = await deps.storage.get(folder, fromWire(key.kind), key.id, signal);
    return { $case: 'object', value: { kind: key.kind, id: key.id, data } };
  } catch (err) {
    if (!(err instanceof NotFoundError || err instanceof DataLossError)) throw err;
    return { $case: 'missing', value: { kind: key.kind, id: key.id } };
  }
}

/** Most objects one GetFile request message may ask for (nodes ask for one at a time). */
export const MAX_GET_FILE_BATCH = 1024;

/** Builds the PeerService handlers. */
export function peerServer(deps: PeerServerDeps): PeerServiceServer {
  const { log } = deps;
  return {
    handshake: bidi<HandshakeRequest, HandshakeResponse>(log, 'Handshake', async (call, signal) => {
      const it = messages<HandshakeRequest>(call);
      const { hello: h, token } = await authenticate(deps, call, it, signal);
      try {
        deps.network.noteInbound(h);
        deps.network.learn(h.knownPeers);
        await writeMessage(call, { step: { $case: 'accepted', value: { sessionToken: token } } }, signal);
        await writeMessage(call, { step: { $case: 'heartbeat', value: { sentUnixMs: Date.now(), knownPeers: deps.network.knownPeers(), leaving: false } } }, signal);
        await heartbeats(deps, call, it, h, signal);
      } finally {
        deps.auth.sessions.revoke(token);
      }
    }),

    storeChunk: authedBidi<StoreChunkRequest, StoreChunkResponse>(deps, 'StoreChunk', async (call, signal, peerId) => {
      const it = messages<StoreChunkRequest>(call);
      const open = (await first(it, 'StoreChunk')).step;
      if (open?.$case !== 'open') throw new InvalidArgumentError('StoreChunk: the first message must be open');
      const folder = assertServerIdChecked(open.value.folder);
      assertServerId(open.value.senderId);
      if (open.value.senderId !== peerId) throw new PermissionDeniedError('StoreChunk: sender_id is not the authenticated peer');
      // Any member may store into any folder: repair re-replicates the folders of members that are gone.
      // Every object is still verified against its ID before it is stored and acknowledged.
      await deps.garbage.load(folder, signal);
      await writeMessage(call, { step: { $case: 'ready', value: { window: deps.window } } }, signal);
      let count = 0;
      let bytes = 0;
      // Up to `window` objects are stored at once (the storage-service overlaps their fsyncs) and each is
      // acknowledged, in order, as soon as it and every object before it are durable. A failed store ends
      // the call at once (the reader is woken); a bad object ends it once the objects before it are acked.
      let acks: Promise<void> = Promise.resolve(); // the chain of acknowledgements, in order
      let unacked = 0;
      let failure: { err: unknown } | undefined;
      let wake: (() => void) | undefined; // wakes the reader (waiting for an object or for a slot)
      const acknowledge = (id: string, store: Promise<boolean | undefined>, size: number) => {
        store.catch(() => undefined); // awaited in order below
        unacked++;
        acks = acks.then(async () => {
          try {
            if (failure) return;
            const created = await store;
            await writeMessage(call, { step: { $case: 'ack', value: { id, created: created === true } } }, signal);
            if (created !== undefined) {
              count++;
              bytes += size;
            }
          } catch (err) {
            failure ??= { err };
          } finally {
            unacked--;
            wake?.();
          }
        });
      };
      const waitFor = <T>(what: Promise<T> | undefined) =>
        new Promise<T | 'woken'>((resolve, reject) => {
          wake = () => resolve('woken');
          what?.then(resolve, reject);
        }).finally(() => (wake = undefined));
      try {
        for (;;) {
          // The next object; an acknowledgement wakes this wait too, a failure ends it.
          const reading = it.next();
          let next: IteratorResult<StoreChunkRequest> | undefined;
          while (!failure) {
            const r = await waitFor(reading);
            if (r !== 'woken') {
              next = r;
              break;
            }
          }
          if (!next || next.done) break;
          const msg = next.value;
          if (msg.step?.$case !== 'object') throw new InvalidArgumentError('StoreChunk: only objects may follow open');
          const o = msg.step.value;
          const kind = fromWire(o.kind);
          assertObjectId(o.id);
          if (objectIdOf(o.data) !== o.id) throw new DataLossError(`object ${o.id}: bytes do not match the ID`);
          if (deps.garbage.isDead(folder, o.id)) {
            // Garbage (a GC record of the folder's owner names it): acknowledged, never stored again, so a
            // peer that has not yet learnt of the record stops pushing it.
            acknowledge(o.id, Promise.resolve(undefined), 0);
          } else if (kind === 'gc') {
            // A GC record must be the folder owner's (PERMISSION_DENIED otherwise, nothing stored or
            // deleted). Applied before it is stored, so a node whose disk is full frees space first; a crash
            // in between loses only the tombstones, and the record is pushed again (this node lacks it).
            // Alone: what it names must not be stored by a put running beside it.
            await acks;
            if (failure) break;
            await deps.garbage.apply(folder, { kind, id: o.id, data: o.data }, signal);
            acknowledge(o.id, deps.storage.put(folder, kind, o.id, o.data, signal), o.data.length);
            await acks;
          } else {
            acknowledge(o.id, deps.storage.put(folder, kind, o.id, o.data, signal), o.data.length);
          }
          while (unacked >= deps.window && !failure) await waitFor(undefined);
        }
      } finally {
        await acks;
      }
      if (failure) throw failure.err;
      log.debug({ rpc: 'StoreChunk', folder, objects: count, bytes }, 'replica stream done');
    }),

    getFile: authedBidi<GetFileRequest, GetFileResponse>(deps, 'GetFile', async (call, signal) => {
      for await (const msg of messages<GetFileRequest>(call)) {
        // Bounded work per request message (the fuzz test found 10,000 unknown IDs in one message took ~20 s).
        if (msg.objects.length > MAX_GET_FILE_BATCH) throw new InvalidArgumentError(`GetFile: at most ${MAX_GET_FILE_BATCH} objects per message, got ${msg.objects.length}`);
        const folder = assertServerIdChecked(msg.folder);
        for (const key of msg.objects) await answer(deps, call, folder, key, (step) => ({ step }), signal);
      }
    }),

    syncFolder: authedBidi<SyncFolderRequest, SyncFolderResponse>(deps, 'SyncFolder', async (call, signal, peerId) => {
      const it = messages<SyncFolderRequest>(call);
      const open = (await first(it, 'SyncFolder')).step;
      if (open?.$case !== 'open') throw new InvalidArgumentError('SyncFolder: the first message must be open');
      const folder = assertServerIdChecked(open.value.folder);
      const list = (kind: ObjectKind) => deps.storage.list(folder, kind, signal);
      // With a summary: list only the buckets whose summaries differ, and say which first.
      let covered: BucketSet | undefined;
      if (open.value.summary) {
        const theirs = summaryFromWire(open.value.summary);
        let buckets;
        try {
          buckets = await coverageFor(theirs, list);
        } catch (err) {
          if (err instanceof RangeError) throw new InvalidArgumentError(`SyncFolder summary: ${err.message}`);
          throw err;
        }
        covered = new BucketSet(theirs.bits, buckets);
        await writeMessage(call, { step: { $case: 'coverage', value: { prefixBits: theirs.bits, buckets: buckets.map((b) => ({ kind: toWire(b.kind), prefix: b.prefix })) } } }, signal);
      }
      const inventory = (async () => {
        let total = 0;
        for (const kind of OBJECT_KINDS) {
          for await (const all of list(kind)) {
            const ids = covered ? all.filter((id) => covered.has(kind, id)) : all;
            if (!ids.length) continue;
            total += ids.length;
            await writeMessage(call, { step: { $case: 'inventory', value: { objects: ids.map((id) => ({ kind: toWire(kind), id })) } } }, signal);
          }
        }
        await writeMessage(call, { step: { $case: 'inventoryEnd', value: { objects: total } } }, signal);
        return total;
      })();
      inventory.catch(() => undefined); // awaited below
      for await (const msg of rest(it)) {
        if (msg.step?.$case !== 'want') throw new InvalidArgumentError('SyncFolder: only wants may follow open');
        // Up to `window` reads ahead of the writes, answers in order; each want batch is answered
        // completely before the next is read (the requester ends the call once it has every answer).
        const ahead: Promise<SyncFolderResponse['step']>[] = [];
        const flushOne = async () => writeMessage(call, { step: await ahead.shift()! }, signal);
        for (const key of msg.step.value.objects) {
          const p = lookup(deps, folder, key, signal);
          p.catch(() => undefined); // awaited in order by flushOne
          ahead.push(p);
          if (ahead.length >= deps.window) await flushOne();
        }
        while (ahead.length) await flushOne();
      }
      const total = await inventory;
      // Without a summary this is an inventory read (repair passes run them often): debug, not info.
      log[covered ? 'info' : 'debug']({ rpc: 'SyncFolder', peer: peerId, folder, objects: total, buckets: covered?.size }, 'served folder sync');
    }),
  };
}
