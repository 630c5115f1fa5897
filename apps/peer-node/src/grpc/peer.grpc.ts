/**
 * The server side of PeerService: what this node does when other nodes talk to it. Thin: it checks
 * protocol steps and frames, and hands work to the node's storage and network.
 */
import { createHash } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  assertObjectId,
  assertServerId,
  bidi,
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
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
import type { StoragePort } from '../domain/ports';
import { PROTOCOL_VERSION } from '../domain/protocol';
import type { PeerNetwork } from '../adapters/network';
import { fromWire, toWire } from '../adapters/kinds';

/** What the peer server needs. */
export interface PeerServerDeps {
  log: Logger;
  storage: StoragePort;
  network: PeerNetwork;
  /** Receive window advertised to StoreChunk senders. */
  window: number;
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

const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

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

/** Builds the PeerService handlers. */
export function peerServer(deps: PeerServerDeps): PeerServiceServer {
  const { log } = deps;
  return {
    handshake: bidi<HandshakeRequest, HandshakeResponse>(log, 'Handshake', async (call, signal) => {
      const it = messages<HandshakeRequest>(call);
      const hello = (await first(it, 'Handshake')).step;
      if (hello?.$case !== 'hello') throw new InvalidArgumentError('Handshake: the first message must be hello');
      const h = hello.value;
      if (h.protocolVersion !== PROTOCOL_VERSION) {
        throw new FailedPreconditionError(`protocol version ${h.protocolVersion} is not supported; this node speaks ${PROTOCOL_VERSION}`);
      }
      assertServerId(h.serverId);
      deps.network.noteInbound(h);
      deps.network.learn(h.knownPeers);
      await writeMessage(
        call,
        {
          step: {
            $case: 'welcome',
            value: { protocolVersion: PROTOCOL_VERSION, serverId: deps.network.serverId, advertiseAddress: deps.network.advertiseAddress, knownPeers: deps.network.knownPeers() },
          },
        },
        signal,
      );
      const beat = setInterval(() => {
        call.write({ step: { $case: 'heartbeat', value: { sentUnixMs: Date.now(), knownPeers: deps.network.knownPeers() } } });
      }, deps.network.heartbeatMs);
      try {
        for await (const msg of rest(it)) {
          if (msg.step?.$case !== 'heartbeat') throw new InvalidArgumentError('Handshake: only heartbeats may follow hello');
          deps.network.learn(msg.step.value.knownPeers);
        }
      } finally {
        clearInterval(beat);
      }
    }),

    storeChunk: bidi<StoreChunkRequest, StoreChunkResponse>(log, 'StoreChunk', async (call, signal) => {
      const it = messages<StoreChunkRequest>(call);
      const open = (await first(it, 'StoreChunk')).step;
      if (open?.$case !== 'open') throw new InvalidArgumentError('StoreChunk: the first message must be open');
      const folder = assertServerId(open.value.folder);
      assertServerId(open.value.senderId);
      // Any member may store into any folder: repair re-replicates the folders of members that are gone.
      // Every object is still verified against its ID before it is stored and acknowledged.
      await writeMessage(call, { step: { $case: 'ready', value: { window: deps.window } } }, signal);
      let count = 0;
      let bytes = 0;
      for await (const msg of rest(it)) {
        if (msg.step?.$case !== 'object') throw new InvalidArgumentError('StoreChunk: only objects may follow open');
        const o = msg.step.value;
        const kind = fromWire(o.kind);
        assertObjectId(o.id);
        if (sha256hex(o.data) !== o.id) throw new DataLossError(`object ${o.id}: bytes do not match the ID`);
        const created = await deps.storage.put(folder, kind, o.id, o.data, signal);
        await writeMessage(call, { step: { $case: 'ack', value: { id: o.id, created } } }, signal);
        count++;
        bytes += o.data.length;
      }
      log.debug({ rpc: 'StoreChunk', folder, objects: count, bytes }, 'replica stream done');
    }),

    getFile: bidi<GetFileRequest, GetFileResponse>(log, 'GetFile', async (call, signal) => {
      for await (const msg of messages<GetFileRequest>(call)) {
        const folder = assertServerId(msg.folder);
        for (const key of msg.objects) await answer(deps, call, folder, key, (step) => ({ step }), signal);
      }
    }),

    syncFolder: bidi<SyncFolderRequest, SyncFolderResponse>(log, 'SyncFolder', async (call, signal) => {
      const it = messages<SyncFolderRequest>(call);
      const open = (await first(it, 'SyncFolder')).step;
      if (open?.$case !== 'open') throw new InvalidArgumentError('SyncFolder: the first message must be open');
      const folder = assertServerId(open.value.folder);
      const inventory = (async () => {
        let total = 0;
        for (const kind of ['chunk', 'manifest'] as const) {
          for await (const ids of deps.storage.list(folder, kind, signal)) {
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
        for (const key of msg.step.value.objects) {
          await answer(deps, call, folder, key, (step) => ({ step: step as SyncFolderResponse['step'] }), signal);
        }
      }
      const total = await inventory;
      log.info({ rpc: 'SyncFolder', folder, objects: total }, 'served folder sync');
    }),
  };
}
