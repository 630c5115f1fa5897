/** JSON shapes of the HTTP API (camelCase, times as ISO-8601 strings), mapped from NodeService messages. */
import { NodeState, RecoveryPhase, type FileInfo, type GetNodeInfoResponse, type Message, type NodeInfo, type RecoverFolderResponse, type RecoveryStatus } from '@distri-vault/shared/generated/vault/node/v1/node';

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
  /**
   * 'self' for the home node; otherwise its membership state: connecting (no handshake yet), connected,
   * suspect (silent past NODE_SUSPECT_AFTER_MS), down (silent past NODE_DOWN_AFTER_MS), left (announced a
   * graceful shutdown); 'disconnected' only from nodes of an older version.
   */
  state: NodeStateName;
  /** Last message from it (ISO-8601), or null if never. */
  lastSeen: string | null;
  /** Its last state change (ISO-8601; for the home node, when it started), or null if unknown. */
  since: string | null;
}

/** Membership states as the HTTP API names them. */
export type NodeStateName = 'self' | 'connecting' | 'connected' | 'suspect' | 'down' | 'left' | 'disconnected';

const STATE_NAMES: Record<NodeState, NodeStateName> = {
  [NodeState.NODE_STATE_UNSPECIFIED]: 'disconnected',
  [NodeState.NODE_STATE_SELF]: 'self',
  [NodeState.NODE_STATE_CONNECTED]: 'connected',
  [NodeState.NODE_STATE_DISCONNECTED]: 'disconnected',
  [NodeState.NODE_STATE_CONNECTING]: 'connecting',
  [NodeState.NODE_STATE_SUSPECT]: 'suspect',
  [NodeState.NODE_STATE_DOWN]: 'down',
  [NodeState.NODE_STATE_LEFT]: 'left',
  [NodeState.UNRECOGNIZED]: 'disconnected',
};

/** A message between nodes, as the home node kept it. */
export interface MessageView {
  /** Message ID (32 hex characters). */
  id: string;
  /** Sender's server ID. */
  from: string;
  /** Recipient's server ID; null for a broadcast. */
  to: string | null;
  /** Topic. */
  topic: string;
  /** The body as UTF-8 text (invalid sequences replaced). */
  body: string;
  /** The body, base64 (exact bytes). */
  bodyBase64: string;
  /** Sender's clock when sent (ISO-8601). */
  sent: string;
  /** When the home node received (or sent) it (ISO-8601). */
  received: string;
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

/** Progress of a recovery. */
export interface RecoveryStatusView {
  /** idle (none ran), syncing, indexing, verifying, done or failed. */
  phase: 'idle' | 'syncing' | 'indexing' | 'verifying' | 'done' | 'failed' | 'unknown';
  /** Run number since the node started; 0 if none ran. */
  run: number;
  /** "startup" (empty disk on start) or "request"; empty if none ran. */
  trigger: string;
  /** Start (ISO-8601), or null. */
  started: string | null;
  /** End (ISO-8601), or null while it runs. */
  finished: string | null;
  /** Peers synced with (answered or failed) and to sync with. */
  peersDone: number;
  peersTotal: number;
  /** Chunks and manifests fetched and verified, and their bytes. */
  chunks: number;
  manifests: number;
  bytes: number;
  /** Bytes fetched per second. */
  bytesPerSecond: number;
  /** Live files in the index. */
  files: number;
  /** Chunks of live versions checked for presence, and those still missing. */
  chunksChecked: number;
  chunksMissing: number;
  /** Errors met, and the last few messages. */
  errors: number;
  errorMessages: string[];
  /** Wall time so far or in all, in milliseconds. */
  durationMs: number;
}

const PHASES: Record<number, RecoveryStatusView['phase']> = {
  [RecoveryPhase.RECOVERY_PHASE_IDLE]: 'idle',
  [RecoveryPhase.RECOVERY_PHASE_SYNCING]: 'syncing',
  [RecoveryPhase.RECOVERY_PHASE_INDEXING]: 'indexing',
  [RecoveryPhase.RECOVERY_PHASE_VERIFYING]: 'verifying',
  [RecoveryPhase.RECOVERY_PHASE_DONE]: 'done',
  [RecoveryPhase.RECOVERY_PHASE_FAILED]: 'failed',
};

/** RecoveryStatus -> RecoveryStatusView. */
export function recoveryStatusView(s: RecoveryStatus | undefined): RecoveryStatusView {
  const r = s ?? ({ phase: RecoveryPhase.RECOVERY_PHASE_UNSPECIFIED, errorMessages: [] } as unknown as RecoveryStatus);
  const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
  return {
    phase: PHASES[r.phase] ?? 'unknown',
    run: r.run ?? 0,
    trigger: r.trigger ?? '',
    started: iso(r.startedUnixMs ?? 0),
    finished: iso(r.finishedUnixMs ?? 0),
    peersDone: r.peersDone ?? 0,
    peersTotal: r.peersTotal ?? 0,
    chunks: r.chunks ?? 0,
    manifests: r.manifests ?? 0,
    bytes: r.bytes ?? 0,
    bytesPerSecond: r.bytesPerSecond ?? 0,
    files: r.files ?? 0,
    chunksChecked: r.chunksChecked ?? 0,
    chunksMissing: r.chunksMissing ?? 0,
    errors: r.errors ?? 0,
    errorMessages: r.errorMessages ?? [],
    durationMs: r.durationMs ?? 0,
  };
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
  /** Garbage collection on the node since it started: GC records applied, IDs tombstoned, objects deleted. */
  garbage: { records: number; tombstones: number; deleted: number };
}

/** FileInfo -> FileView. */
export function fileView(f: FileInfo): FileView {
  const v: FileView = { path: f.path, version: f.version, size: f.size, sha256: f.sha256, updated: new Date(f.updatedUnixMs).toISOString(), chunks: f.chunks };
  if (f.deleted) v.deleted = true;
  return v;
}

/** NodeInfo -> NodeView. */
export function nodeView(n: NodeInfo): NodeView {
  const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
  return { serverId: n.serverId, address: n.address, state: STATE_NAMES[n.state] ?? 'disconnected', lastSeen: iso(n.lastSeenUnixMs), since: iso(n.sinceUnixMs) };
}

/** Message -> MessageView. */
export function messageView(m: Message): MessageView {
  return {
    id: m.id,
    from: m.from,
    to: m.to || null,
    topic: m.topic,
    body: Buffer.from(m.body).toString('utf8'),
    bodyBase64: Buffer.from(m.body).toString('base64'),
    sent: new Date(m.sentUnixMs).toISOString(),
    received: new Date(m.receivedUnixMs).toISOString(),
  };
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
    garbage: { records: r.garbage?.records ?? 0, tombstones: r.garbage?.tombstones ?? 0, deleted: r.garbage?.deleted ?? 0 },
  };
}

/** Replication health of one folder on the home node, from its last repair pass. */
export interface FolderHealthView {
  /** The folder (its owner's server ID). */
  folder: string;
  /** True for the home node's own folder. */
  own: boolean;
  /** Objects (chunks and manifests) of the folder the home node holds, and how many are chunks. */
  objects: number;
  chunks: number;
  /** Objects (and chunks) below R copies among the members the node could reach. */
  underReplicated: number;
  chunksUnderReplicated: number;
  /** Objects no other reachable member holds: the home node's copy is the only one known. */
  soleCopy: number;
}

/** GET /v1/replication: per-folder replication health and the backlog. */
export interface ReplicationView {
  /** The home node's server ID. */
  serverId: string;
  /** Copies wanted of every object (R). */
  replicas: number;
  /** The repair pass these counts come from: when it finished and how long it took; null before the first pass. */
  pass: { finished: string; durationMs: number } | null;
  /** Sums over every folder. */
  totals: { folders: number; objects: number; underReplicated: number; soleCopy: number };
  /** Per folder, sorted by folder; empty before the first pass. */
  folders: FolderHealthView[];
  /** Copies the home node still owes its peers (now, not at the pass). */
  backlog: { objects: number; bytes: number };
}

/** GetNodeInfoResponse -> ReplicationView. */
export function replicationView(r: GetNodeInfoResponse): ReplicationView {
  const l = r.lastRepair;
  const folders = (l?.foldersHealth ?? []).map((f) => ({
    folder: f.folder,
    own: f.folder === r.serverId,
    objects: f.objects,
    chunks: f.chunks,
    underReplicated: f.underReplicated,
    chunksUnderReplicated: f.chunksUnderReplicated,
    soleCopy: f.soleCopy,
  }));
  const sum = (k: 'objects' | 'underReplicated' | 'soleCopy') => folders.reduce((n, f) => n + f[k], 0);
  return {
    serverId: r.serverId,
    replicas: r.replicas,
    pass: l ? { finished: new Date(l.finishedUnixMs).toISOString(), durationMs: l.durationMs } : null,
    totals: { folders: folders.length, objects: sum('objects'), underReplicated: sum('underReplicated'), soleCopy: sum('soleCopy') },
    folders,
    backlog: { objects: r.backlog?.objects ?? 0, bytes: r.backlog?.bytes ?? 0 },
  };
}
