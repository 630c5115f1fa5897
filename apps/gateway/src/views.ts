/** JSON shapes of the HTTP API (camelCase, times as ISO-8601 strings), mapped from NodeService messages. */
import { NodeState, type FileInfo, type GetNodeInfoResponse, type NodeInfo, type RecoverFolderResponse } from '@distri-vault/shared/generated/vault/node/v1/node';

/** One version of a file. */
export interface FileView {
  /** Path inside the folder. */
  path: string;
  /** Version number, from 1. */
  version: number;
  /** Plaintext size in bytes. */
  size: number;
  /** Lowercase hex SHA-256 of the plaintext. */
  sha256: string;
  /** When the version was written (ISO-8601). */
  updated: string;
  /** Number of chunks. */
  chunks: number;
  /** Present (true) on deletion records in version listings. */
  deleted?: true;
}

/** One member of the network as the home node sees it. */
export interface NodeView {
  /** Server ID (empty until its first handshake). */
  serverId: string;
  /** host:port of its PeerService. */
  address: string;
  /** 'self' for the home node; otherwise whether its control stream is open. */
  state: 'self' | 'connected' | 'disconnected';
  /** Last message from it (ISO-8601), or null if never. */
  lastSeen: string | null;
}

/** What a recovery restored. */
export interface RecoverView {
  /** Peers that answered. */
  peers: number;
  /** Chunks fetched and verified. */
  chunks: number;
  /** Manifests fetched and verified. */
  manifests: number;
  /** Bytes fetched. */
  bytes: number;
  /** Live files afterwards. */
  files: number;
  /** Wall time in milliseconds. */
  durationMs: number;
}

/** Identity and settings of the home node. */
export interface NodeInfoView {
  /** Server ID (folder name). */
  serverId: string;
  /** host:port peers use to reach it. */
  peerAddress: string;
  /** PeerService protocol version. */
  protocolVersion: number;
  /** Plaintext bytes per chunk. */
  chunkSize: number;
  /** Copies kept of every chunk. */
  replicas: number;
  /** Durable copies a put waits for (the owner's included). */
  writeQuorum: number;
  /** Copies the node still owes its peers (queued or in flight), in all and per peer. */
  backlog: { objects: number; bytes: number; sent: number; failed: number; peers: { serverId: string; objects: number; bytes: number }[] };
  /** The node's last repair/rebalance pass, or null before the first. */
  lastRepair: { finished: string; objects: number; pushed: number; pushedBytes: number; deleted: number; failed: number; underReplicated: number; durationMs: number } | null;
}

/** FileInfo -> FileView. */
export function fileView(f: FileInfo): FileView {
  const v: FileView = { path: f.path, version: f.version, size: f.size, sha256: f.sha256, updated: new Date(f.updatedUnixMs).toISOString(), chunks: f.chunks };
  if (f.deleted) v.deleted = true;
  return v;
}

/** NodeInfo -> NodeView. */
export function nodeView(n: NodeInfo): NodeView {
  const state = n.state === NodeState.NODE_STATE_SELF ? 'self' : n.state === NodeState.NODE_STATE_CONNECTED ? 'connected' : 'disconnected';
  return { serverId: n.serverId, address: n.address, state, lastSeen: n.lastSeenUnixMs > 0 ? new Date(n.lastSeenUnixMs).toISOString() : null };
}

/** RecoverFolderResponse -> RecoverView. */
export function recoverView(r: RecoverFolderResponse): RecoverView {
  return { peers: r.peers, chunks: r.chunks, manifests: r.manifests, bytes: r.bytes, files: r.files, durationMs: r.durationMs };
}

/** GetNodeInfoResponse -> NodeInfoView. */
export function nodeInfoView(r: GetNodeInfoResponse): NodeInfoView {
  const b = r.backlog;
  const l = r.lastRepair;
  return {
    serverId: r.serverId,
    peerAddress: r.peerAddress,
    protocolVersion: r.protocolVersion,
    chunkSize: r.chunkSize,
    replicas: r.replicas,
    writeQuorum: r.writeQuorum,
    backlog: { objects: b?.objects ?? 0, bytes: b?.bytes ?? 0, sent: b?.sent ?? 0, failed: b?.failed ?? 0, peers: r.backlogPeers.map((p) => ({ serverId: p.serverId, objects: p.objects, bytes: p.bytes })) },
    lastRepair: l
      ? { finished: new Date(l.finishedUnixMs).toISOString(), objects: l.objects, pushed: l.pushed, pushedBytes: l.pushedBytes, deleted: l.deleted, failed: l.failed, underReplicated: l.underReplicated, durationMs: l.durationMs }
      : null,
  };
}
