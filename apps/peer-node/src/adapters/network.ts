/**
 * Membership: every peer address this node knows, with a PeerLink keeping a control stream open to each.
 * Addresses come from the bootstrap list, from Hellos of peers that dial in, and from the known-peer
 * lists exchanged in handshakes and heartbeats. Implements the domain's PeersPort over the links.
 */
import type { Logger } from 'pino';
import { NotFoundError, UnavailableError } from '@distri-vault/shared';
import type { PeerAddress } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import type { FolderInventory, FolderSyncer, InventoryPort, ObjectKind, PeersPort, ReplicaSession, SyncOptions, SyncResult, SyncSink } from '../domain/ports';
import { readInventory } from './inventory';
import { PeerLink, type LinkAuth, type LinkHost, type LinkState } from './peer-link';

/** Settings of the network. */
export interface NetworkOptions {
  serverId: string;
  heartbeatMs: number;
  window: number;
  /** This node's keys and the network secret, for the Handshakes it dials. */
  auth: LinkAuth;
  /** How long a peer call waits for an authenticated session before UNAVAILABLE (default 10 s). */
  sessionWaitMs?: number;
}

/** A member as ListNodes shows it. */
export interface MemberView {
  serverId: string;
  address: string;
  state: LinkState;
  lastSeenUnixMs: number;
}

/** All links of this node. */
export class PeerNetwork implements PeersPort, FolderSyncer, InventoryPort, LinkHost {
  private readonly links = new Map<string, PeerLink>();
  private stopped = false;
  /** Called whenever a link (re)connects; the node uses it to pull its own folder (anti-entropy). */
  onPeerConnected: (serverId: string) => void = () => undefined;

  constructor(
    private readonly opts: NetworkOptions,
    readonly log: Logger,
  ) {}

  get serverId(): string {
    return this.opts.serverId;
  }
  /** host:port peers dial to reach this node; set once the peer server is bound, before start(). */
  advertiseAddress = '';
  get auth(): LinkAuth {
    return this.opts.auth;
  }
  get sessionWaitMs(): number | undefined {
    return this.opts.sessionWaitMs;
  }
  get heartbeatMs(): number {
    return this.opts.heartbeatMs;
  }
  get window(): number {
    return this.opts.window;
  }

  /** Dials every bootstrap address. */
  start(bootstrap: string[]): void {
    for (const a of bootstrap) this.addAddress(a);
  }

  /** Ensures a link to `address` (never to this node's own address). */
  addAddress(address: string): void {
    if (this.stopped || !address || address === this.advertiseAddress || this.links.has(address)) return;
    const link = new PeerLink(address, this);
    this.links.set(address, link);
    link.start();
  }

  /** Learns addresses from a peer's list. */
  learn(peers: PeerAddress[]): void {
    for (const p of peers) if (p.serverId !== this.opts.serverId) this.addAddress(p.address);
  }

  /** What this node tells others it knows: itself and its connected peers. */
  knownPeers(): PeerAddress[] {
    const out: PeerAddress[] = [{ serverId: this.opts.serverId, address: this.advertiseAddress }];
    for (const l of this.links.values()) if (l.state === 'connected') out.push({ serverId: l.serverId, address: l.address });
    return out;
  }

  onConnected(link: PeerLink): void {
    this.onPeerConnected(link.serverId);
  }

  /** Connected peers' server IDs, sorted, each once. */
  connected(): string[] {
    const ids = new Set<string>();
    for (const l of this.links.values()) if (l.state === 'connected' && l.serverId) ids.add(l.serverId);
    return [...ids].sort();
  }

  private link(serverId: string): PeerLink {
    for (const l of this.links.values()) if (l.serverId === serverId && l.state === 'connected') return l;
    for (const l of this.links.values()) if (l.serverId === serverId) throw new UnavailableError(`peer ${serverId} is not connected`);
    throw new NotFoundError(`unknown peer ${serverId}`);
  }

  openReplica(peerId: string, folder: string, signal?: AbortSignal): Promise<ReplicaSession> {
    return this.link(peerId).openReplica(folder, signal);
  }

  fetch(peerId: string, folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<Buffer | null> {
    return this.link(peerId).fetch(folder, kind, id, signal);
  }

  syncFolder(peerId: string, folder: string, sink: SyncSink, signal?: AbortSignal, options?: SyncOptions): Promise<SyncResult> {
    return this.link(peerId).syncFolder(folder, sink, signal, options);
  }

  /** A peer's whole inventory of `folder` (for repair). */
  inventory(peerId: string, folder: string, signal?: AbortSignal): Promise<FolderInventory> {
    const l = this.link(peerId);
    return readInventory(l.client, folder, signal, l.address);
  }

  /** Every known member except this node and addresses that turned out to be this node. */
  members(): MemberView[] {
    return [...this.links.values()]
      .filter((l) => l.state !== 'self')
      .map((l) => ({ serverId: l.serverId, address: l.address, state: l.state, lastSeenUnixMs: l.lastSeen }))
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  /** Records that a peer dialed in (its Hello), so this node dials back and shares the address. */
  noteInbound(hello: { serverId: string; advertiseAddress: string }): void {
    if (hello.serverId !== this.opts.serverId) this.addAddress(hello.advertiseAddress);
  }

  stop(): void {
    this.stopped = true;
    for (const l of this.links.values()) l.stop();
  }
}
