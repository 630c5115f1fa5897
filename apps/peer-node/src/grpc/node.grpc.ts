/**
 * The server side of NodeService: the gateway's (and grpcurl's) way into this node's Vault.
 */
import type { Logger } from 'pino';
import { clientStream, messages, InvalidArgumentError, serverStream, unary, writeMessage } from '@distri-vault/shared';
import {
  NodeState,
  RecoveryPhase,
  type FileInfo as WireFileInfo,
  type NodeServiceServer,
  type RecoveryStatus as WireRecoveryStatus,
  type UploadFileRequest,
} from '@distri-vault/shared/generated/vault/node/v1/node';
import type { RecoveryStatus } from '../domain/recovery';
import type { FileInfo, Vault } from '../domain/vault';
import type { MemberState, PeerNetwork } from '../adapters/network';
import { assertTopic } from '../domain/messages';
import { PROTOCOL_VERSION } from '../domain/protocol';
import type { RepairReport } from '../domain/replicator';
import type { GcStats } from '../domain/garbage';

/** What the node server needs. */
export interface NodeServerDeps {
  log: Logger;
  vault: Vault;
  network: PeerNetwork;
  chunkSize: number;
  replicas: number;
  /** The last repair pass, when repair runs on this node. */
  lastRepair?: () => (RepairReport & { finishedUnixMs: number }) | undefined;
  /** Garbage collection counts, when this node applies GC records. */
  garbage?: () => GcStats;
}

function wireInfo(f: FileInfo): WireFileInfo {
  return { path: f.path, version: f.version, size: f.size, sha256: f.sha256, updatedUnixMs: f.updatedUnixMs, chunks: f.chunks, deleted: f.deleted ?? false };
}

const STATE: Record<MemberState, NodeState> = {
  connecting: NodeState.NODE_STATE_CONNECTING,
  connected: NodeState.NODE_STATE_CONNECTED,
  suspect: NodeState.NODE_STATE_SUSPECT,
  down: NodeState.NODE_STATE_DOWN,
  left: NodeState.NODE_STATE_LEFT,
};

const PHASE = {
  idle: RecoveryPhase.RECOVERY_PHASE_IDLE,
  syncing: RecoveryPhase.RECOVERY_PHASE_SYNCING,
  indexing: RecoveryPhase.RECOVERY_PHASE_INDEXING,
  verifying: RecoveryPhase.RECOVERY_PHASE_VERIFYING,
  done: RecoveryPhase.RECOVERY_PHASE_DONE,
  failed: RecoveryPhase.RECOVERY_PHASE_FAILED,
};

/** A recovery status on the wire. */
export function wireRecoveryStatus(s: RecoveryStatus): WireRecoveryStatus {
  return {
    phase: PHASE[s.phase],
    run: s.run,
    trigger: s.trigger,
    startedUnixMs: s.startedUnixMs,
    finishedUnixMs: s.finishedUnixMs,
    peersDone: s.peersDone,
    peersTotal: s.peersTotal,
    chunks: s.chunks,
    manifests: s.manifests,
    bytes: s.bytes,
    bytesPerSecond: s.bytesPerSecond,
    files: s.files,
    chunksChecked: s.chunksChecked,
    chunksMissing: s.chunksMissing,
    errors: s.errors,
    errorMessages: s.errorMessages,
    durationMs: s.durationMs,
  };
}


/**
 * Data frames after the header of an upload, up to its `finish` step, which must be the last message and
 * count every byte sent. A stream that ends without `finish` is an upload cut short (grpc-js delivers a
 * client's cancel as a plain end of the request stream): it fails, and no version is written.
 */
async function* uploadData(it: AsyncIterator<UploadFileRequest>): AsyncGenerator<Buffer> {
  let bytes = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) throw new InvalidArgumentError('UploadFile: the stream ended without finish (upload cut short); nothing stored');
    const step = r.value.step;
    if (step?.$case === 'finish') {
      if (step.value.bytes !== bytes) throw new InvalidArgumentError(`UploadFile: finish says ${step.value.bytes} bytes, ${bytes} arrived`);
      if (!(await it.next()).done) throw new InvalidArgumentError('UploadFile: nothing may follow finish');
      return;
    }
    if (step?.$case !== 'data') throw new InvalidArgumentError('UploadFile: only data may follow the header');
    bytes += step.value.length;
    yield step.value;
  }
}

/** Builds the NodeService handlers. */
export function nodeServer(deps: NodeServerDeps): NodeServiceServer {
  const { log, vault, network } = deps;
  return {
    uploadFile: clientStream(log, 'UploadFile', async (call, signal) => {
      const it = messages<UploadFileRequest>(call);
      const head = await it.next();
      if (head.done || head.value.step?.$case !== 'header') throw new InvalidArgumentError('UploadFile: the first message must be the header');
      const h = head.value.step.value;
      const info = await vault.upload(h.path, h.size, uploadData(it), signal);
      return { file: wireInfo(info) };
    }),

    downloadFile: serverStream(log, 'DownloadFile', async (call, signal) => {
      const { path, version, offset } = call.request;
      if (offset < 0) throw new InvalidArgumentError('DownloadFile: offset must be >= 0');
      const info = vault.stat(path, version);
      await writeMessage(call, { step: { $case: 'header', value: wireInfo(info) } }, signal);
      for await (const data of vault.read(path, info.version, signal, offset)) {
        await writeMessage(call, { step: { $case: 'data', value: data } }, signal);
      }
    }),

    statFile: unary(log, 'StatFile', async (req) => ({ file: wireInfo(vault.stat(req.path, req.version)) })),

    listFiles: unary(log, 'ListFiles', async (req) => {
      if (req.limit < 0) throw new InvalidArgumentError('ListFiles: limit must be >= 0');
      let files = vault.list(req.prefix);
      if (req.startAfter) files = files.filter((f) => f.path > req.startAfter);
      const more = req.limit > 0 && files.length > req.limit;
      if (more) files = files.slice(0, req.limit);
      return { files: files.map(wireInfo), nextStartAfter: more ? files[files.length - 1]!.path : '' };
    }),

    deleteFile: unary(log, 'DeleteFile', async (req, signal) => ({ version: await vault.delete(req.path, signal) })),

    listNodes: unary(log, 'ListNodes', async () => ({
      nodes: [
        { serverId: network.serverId, address: network.advertiseAddress, state: NodeState.NODE_STATE_SELF, lastSeenUnixMs: Date.now(), sinceUnixMs: network.startedUnixMs },
        ...network.members().map((m) => ({ serverId: m.serverId, address: m.address, state: STATE[m.state], lastSeenUnixMs: m.lastSeenUnixMs, sinceUnixMs: m.sinceUnixMs })),
        // Dialed, never answered: nothing is known of who is there yet.
        ...network.pending().map((p) => ({ serverId: '', address: p.address, state: NodeState.NODE_STATE_CONNECTING, lastSeenUnixMs: p.lastSeenUnixMs, sinceUnixMs: 0 })),
      ],
    })),

    sendMessage: unary(log, 'SendMessage', async (req, signal) => network.sendMessage(req.to, req.topic, req.body, signal)),

    listMessages: unary(log, 'ListMessages', async (req) => {
      if (req.sinceUnixMs < 0) throw new InvalidArgumentError('ListMessages: since_unix_ms must be >= 0');
      if (req.topic) assertTopic(req.topic);
      const page = network.messagePage({ sinceUnixMs: req.sinceUnixMs, topic: req.topic, afterId: req.afterId });
      return { messages: page.messages, nextAfterId: page.next };
    }),

    listVersions: unary(log, 'ListVersions', async (req) => ({ versions: vault.versions(req.path).map(wireInfo) })),

    restoreVersion: unary(log, 'RestoreVersion', async (req, signal) => {
      if (!(req.version >= 1)) throw new InvalidArgumentError('RestoreVersion: version must be >= 1');
      return { file: wireInfo(await vault.restore(req.path, req.version, signal)) };
    }),

    deleteVersion: unary(log, 'DeleteVersion', async (req, signal) => {
      if (!req.all && !(req.version >= 1)) throw new InvalidArgumentError('DeleteVersion: give a version >= 1, or all');
      return { removed: await vault.deleteVersion(req.path, req.all ? 'all' : req.version, signal) };
    }),

    recoverFolder: unary(log, 'RecoverFolder', async (_req, signal) => vault.recover(signal)),

    getRecoveryStatus: unary(log, 'GetRecoveryStatus', async () => ({ status: wireRecoveryStatus(vault.recovery.status()) })),

    startRecovery: unary(log, 'StartRecovery', async () => {
      const run = vault.recovery.start('request');
      return { status: wireRecoveryStatus(run.status), joined: run.joined };
    }),

    getNodeInfo: unary(log, 'GetNodeInfo', async () => ({
      serverId: network.serverId,
      peerAddress: network.advertiseAddress,
      protocolVersion: PROTOCOL_VERSION,
      chunkSize: deps.chunkSize,
      replicas: deps.replicas,
      writeQuorum: vault.writeQuorum,
      backlog: (() => {
        const b = vault.replication.stats();
        return { objects: b.objects, bytes: b.bytes, sent: b.sent, sentBytes: b.sentBytes, failed: b.failed };
      })(),
      backlogPeers: vault.replication.stats().peers.map((p) => ({ serverId: p.peerId, objects: p.objects, bytes: p.bytes })),
      garbage: deps.garbage?.(),
      lastRepair: (() => {
        const r = deps.lastRepair?.();
        if (!r) return undefined;
        return {
          finishedUnixMs: r.finishedUnixMs,
          folders: r.folders,
          objects: r.objects,
          pushed: r.pushed,
          pushedBytes: r.pushedBytes,
          deleted: r.deleted,
          failed: r.failed,
          underReplicated: r.under,
          durationMs: r.durationMs,
          foldersHealth: (r.folderHealth ?? []).map((f) => ({
            folder: f.folder,
            objects: f.objects,
            underReplicated: f.under,
            soleCopy: f.soleCopy,
            chunks: f.chunks,
            chunksUnderReplicated: f.chunksUnder,
          })),
        };
      })(),
    })),

    getVaultKeyInfo: unary(log, 'GetVaultKeyInfo', async (_req, signal) => {
      const k = await vault.keyInfo(signal);
      return { keyFingerprint: k.keyFingerprint, createdUnixMs: k.createdUnixMs, previousFingerprints: k.previousFingerprints };
    }),

    rotateVaultKey: unary(log, 'RotateVaultKey', async (_req, signal) => ({ rotation: await vault.rotateKeys(signal) })),

    shredFile: unary(log, 'ShredFile', async (req, signal) => {
      if (req.version !== undefined && !(req.version >= 1)) throw new InvalidArgumentError('ShredFile: version must be >= 1');
      const r = await vault.shred(req.path, req.version, signal);
      return { versionsRemoved: r.removed, rotation: r.rotation };
    }),
  };
}
