/**
 * Membership over the control streams. Every peer address this node knows gets a PeerLink keeping a
 * Handshake stream open; addresses come from the bootstrap list, DNS discovery, Hellos of peers that dial
 * in, and the known-peer lists exchanged in handshakes and heartbeats. Members are keyed by server ID
 * (domain/membership.ts): a node reachable under two addresses is one member with one link (the other
 * address is remembered as an alias and not dialed again while the first link is up).
 *
 * Liveness: any message on either stream with a member (this node's link to it, or its link to this node)
 * counts; the membership tick turns silence into suspect, then down, and drops a link whose own stream
 * went silent so it redials. A graceful shutdown sends a leave notice on every stream first.
 *
 * Messaging: SendMessage hands a PeerMessage to the member's control stream (this node's link, or the
 * member's inbound stream when this node has no open link); received ones are validated, deduplicated and
 * kept in a bounded ring (domain/messages.ts). Implements the domain's PeersPort over the links.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { assertServerId, assertServerIdChecked, InvalidArgumentError, NotFoundError, UnavailableError } from '@distri-vault/shared';
import type { HandshakeRequest, HandshakeResponse, PeerAddress, PeerMessage } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import type { FolderInventory, FolderSyncer, InventoryPort, ObjectKind, PeersPort, ReplicaSession, SyncOptions, SyncResult, SyncSink } from '../domain/ports';
import { Membership, type MemberState, type MemberStateListener, type MemberView } from '../domain/membership';
import { assertBody, assertTopic, MessageBox, validateIncoming, type KeptMessage, type MessageQuery, type PeerMessageData } from '../domain/messages';
import { PEER_MESSAGES } from '../domain/protocol';
import { readInventory } from './inventory';
import { PeerLink, type LinkAuth, type LinkHost } from './peer-link';

export type { MemberState, MemberView } from '../domain/membership';

/** Settings of the network. */
export interface NetworkOptions {
  serverId: string;
  heartbeatMs: number;
  window: number;
  /** This node's keys and the network secret, for the Handshakes it dials. */
  auth: LinkAuth;
  /** How long a peer call waits for an authenticated session before UNAVAILABLE (default 10 s). */
  sessionWaitMs?: number;
  /** How long a peer has for each handshake answer before the link dials again (default 15 s). */
  handshakeStepMs?: number;
  /** Silence after which a member is suspect; default 3 x heartbeatMs. */
  suspectAfterMs?: number;
  /** Silence after which a member is down; default max(15000, suspectAfterMs + heartbeatMs). */
  downAfterMs?: number;
  /** Messages kept (ListMessages); default 1000. */
  messageCapacity?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** An address dialed but not identified yet (no welcome), as ListNodes shows it. */
export interface PendingAddress {
  address: string;
  lastSeenUnixMs: number;
}

/** A member's inbound control stream (it dialed this node): how to write to it. */
type InboundSend = ((msg: HandshakeResponse) => Promise<void>) & { capabilities?: readonly string[] };

/** Which stream a control step arrived on. */
type Via = { link: PeerLink } | { inbound: true };

/** Wire step of a PeerMessage, from or to domain data. */
const toWireMessage = (m: PeerMessageData): PeerMessage => ({ ...m });

/** All links of this node, and its view of the members. */
export class PeerNetwork implements PeersPort, FolderSyncer, InventoryPort, LinkHost {
  private readonly links = new Map<string, PeerLink>();
  /** Addresses found to reach a member that already has a link: address -> server ID. */
  private readonly aliases = new Map<string, string>();
  private readonly inbound = new Map<string, Set<InboundSend>>();
  private readonly membership: Membership;
  private readonly box: MessageBox;
  private readonly now: () => number;
  private readonly suspectAfterMs: number;
  private readonly downAfterMs: number;
  private ticker: NodeJS.Timeout | undefined;
  /** Interval of the liveness tick, and when it last ran (performance.now()). */
  private readonly tickMs: number;
  private lastTickAt: number | undefined;
  private stopped = false;
  /** Set by leave(): no new links, and Handshakes dialed in are refused before they are accepted. */
  private leaving = false;
  /** Called whenever a link (re)connects; the node uses it to pull its own folder (anti-entropy). */
  onPeerConnected: (serverId: string) => void = () => undefined;
  /** Unix ms when this network started (ListNodes "since" of the node itself). */
  readonly startedUnixMs: number;

  constructor(
    private readonly opts: NetworkOptions,
    readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
    this.suspectAfterMs = opts.suspectAfterMs ?? 3 * opts.heartbeatMs;
    this.downAfterMs = opts.downAfterMs ?? Math.max(15_000, this.suspectAfterMs + opts.heartbeatMs);
    this.tickMs = Math.max(50, Math.min(1000, Math.floor(opts.heartbeatMs / 2)));
    this.membership = new Membership({ suspectAfterMs: this.suspectAfterMs, downAfterMs: this.downAfterMs, now: this.now });
    this.box = new MessageBox(opts.messageCapacity ?? 1000);
    this.startedUnixMs = this.now();
    this.membership.onState((id, state, previous) => {
      if (previous !== undefined) this.log.info({ peerId: id, state, previous }, 'member state');
    });
  }

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
  get handshakeStepMs(): number | undefined {
    return this.opts.handshakeStepMs;
  }
  get heartbeatMs(): number {
    return this.opts.heartbeatMs;
  }
  get window(): number {
    return this.opts.window;
  }

  /** Dials every bootstrap address and starts the liveness tick. */
  start(bootstrap: string[]): void {
    for (const a of bootstrap) this.addAddress(a);
    if (!this.ticker) {
      this.lastTickAt = performance.now();
      this.ticker = setInterval(() => this.tick(), this.tickMs);
      this.ticker.unref();
    }
  }

  /**
   * Applies the timeouts. Also redials any link whose own stream has been silent one heartbeat past the
   * suspect timeout (4 heartbeats by default): its stream may be dead without an error (a frozen process, a
   * dropped route). The link drops its whole connection: every call on it fails UNAVAILABLE at once rather
   * than after the HTTP/2 keepalive (~40 s). Not sooner: redialing ends the calls in flight.
   *
   * A tick that runs late (this process was stalled: a long synchronous step, GC, a paused VM) judges
   * nothing: the peers' messages are still queued in the sockets, unread, and the silence is this node's
   * own. The next tick, after the event loop has read them, does. Seen in CI: a test syncing thousands of
   * objects in one process dropped its own connection mid-sync.
   */
  tick(): void {
    const at = performance.now();
    const late = at - (this.lastTickAt ?? at) > 2 * this.tickMs + 250;
    this.lastTickAt = at;
    if (late) return;
    this.membership.tick();
    const now = this.now();
    for (const l of this.links.values()) {
      if (l.state === 'connected' && now - l.lastSeen > this.suspectAfterMs + this.opts.heartbeatMs) {
        const dropped = l.reconnect();
        this.log.warn({ peer: l.address, peerId: l.serverId, silentMs: now - l.lastSeen, dropped }, 'link silent; dropped its connection, redialing');
      } else if (l.state !== 'connected' && l.serverId && now - l.lastSeen > this.downAfterMs && [...this.linksOf(l.serverId)].some((o) => o !== l && o.state === 'connected')) {
        // The member moved (a pod restarted with a new IP) and is linked at its new address: stop redialing
        // the old one forever. It stays an alias, dialed again only if the member loses every link.
        this.log.info({ peer: l.address, peerId: l.serverId }, 'dropping a dead address of a member linked elsewhere');
        this.aliases.set(l.address, l.serverId);
        this.links.delete(l.address);
        l.stop();
      }
    }
  }

  /** Ensures a link to `address` (never to this node's own address, nor to an alias of a linked member). */
  addAddress(address: string): void {
    if (this.stopped || this.leaving || !address || address === this.advertiseAddress || this.links.has(address)) return;
    const aliasOf = this.aliases.get(address);
    if (aliasOf !== undefined && this.hasConnectedLink(aliasOf)) return;
    const link = new PeerLink(address, this);
    this.links.set(address, link);
    link.start();
  }

  /** Learns members from a peer's list: each becomes known, and gets a link unless one is already up. */
  learn(peers: PeerAddress[]): void {
    for (const p of peers) {
      if (p.serverId === this.opts.serverId || !p.address) continue;
      if (p.serverId) {
        // Lists come from peers: ignore entries that are not server IDs rather than showing them.
        try {
          assertServerId(p.serverId);
        } catch {
          continue;
        }
        this.membership.known(p.serverId, p.address);
        if (this.hasConnectedLink(p.serverId)) continue;
      }
      this.addAddress(p.address);
    }
  }

  /** What this node tells others it knows: itself and its connected peers (each once, by advertised address). */
  knownPeers(): PeerAddress[] {
    const out: PeerAddress[] = [{ serverId: this.opts.serverId, address: this.advertiseAddress }];
    const seen = new Set<string>([this.opts.serverId]);
    for (const l of this.links.values()) {
      if (l.state !== 'connected' || seen.has(l.serverId)) continue;
      seen.add(l.serverId);
      out.push({ serverId: l.serverId, address: l.advertised || l.address });
    }
    return out;
  }

  onConnected(link: PeerLink): void {
    const id = link.serverId;
    // Same member under another address, already linked: keep the first link, remember this address.
    const other = [...this.linksOf(id)].find((l) => l !== link && l.state === 'connected');
    if (other) {
      this.log.info({ peer: link.address, peerId: id, kept: other.address }, 'address is an alias of a linked member; closing the duplicate link');
      this.aliases.set(link.address, id);
      this.links.delete(link.address);
      link.stop();
      return;
    }
    this.membership.handshake(id, link.advertised || link.address);
    this.onPeerConnected(id);
  }

  /** A step on a control stream after the handshake, from `peerId`. Throws InvalidArgumentError on a malformed one. */
  onControl(link: PeerLink, step: HandshakeResponse['step']): void {
    this.control(link.serverId, step, { link });
  }

  /** The same for a step on an inbound stream (the peer dialed this node). */
  onInboundControl(peerId: string, step: HandshakeRequest['step']): void {
    this.control(peerId, step, { inbound: true });
  }

  private control(peerId: string, step: HandshakeRequest['step'] | HandshakeResponse['step'], via: Via): void {
    switch (step?.$case) {
      case 'heartbeat':
        if ('link' in via) via.link.lastSeen = this.now();
        if (step.value.leaving) {
          this.log.info({ peerId }, 'member announced it is leaving');
          this.membership.leave(peerId);
          return;
        }
        this.membership.heard(peerId);
        this.learn(step.value.knownPeers);
        return;
      case 'message': {
        const msg = validateIncoming(step.value, peerId, this.opts.serverId);
        this.membership.heard(peerId);
        if (this.box.accept(msg, this.now())) {
          this.log.info({ peerId, msgId: msg.id, topic: msg.topic, bytes: msg.body.length, broadcast: msg.to === '' }, 'peer message');
        }
        return;
      }
      default:
        throw new InvalidArgumentError('Handshake: only heartbeats and messages may follow the handshake');
    }
  }

  /**
   * Records that a peer dialed in (its Hello): it is connected, this node dials back (unless it already has
   * a link up to that member) and shares the address.
   */
  noteInbound(hello: { serverId: string; advertiseAddress: string }): void {
    // A Handshake finishing after the leave notice would show this node connected again on the dialer.
    if (this.leaving) throw new UnavailableError('this node is shutting down');
    if (hello.serverId === this.opts.serverId) return;
    this.membership.handshake(hello.serverId, hello.advertiseAddress);
    if (!this.hasConnectedLink(hello.serverId)) this.addAddress(hello.advertiseAddress);
  }

  /** Registers a member's open inbound control stream (and the capabilities its Hello announced); returns the function that removes it. */
  attachInbound(peerId: string, write: (msg: HandshakeResponse) => Promise<void>, capabilities: readonly string[] = []): () => void {
    const send: InboundSend = Object.assign((m: HandshakeResponse) => write(m), { capabilities });
    let set = this.inbound.get(peerId);
    if (!set) this.inbound.set(peerId, (set = new Set()));
    set.add(send);
    return () => {
      set.delete(send);
      if (set.size === 0 && this.inbound.get(peerId) === set) this.inbound.delete(peerId);
    };
  }

  /** Connected peers' server IDs (an open link of this node's), sorted, each once. */
  connected(): string[] {
    const ids = new Set<string>();
    for (const l of this.links.values()) if (l.state === 'connected' && l.serverId) ids.add(l.serverId);
    return [...ids].sort();
  }

  /** Every member this node knows (not itself), sorted by server ID. */
  members(): MemberView[] {
    return this.membership.members();
  }

  /** A member's state; undefined for an unknown server ID. */
  state(serverId: string): MemberState | undefined {
    return this.membership.state(serverId);
  }

  /** Members connected or suspect, sorted: where data may go. */
  live(): string[] {
    return this.membership.live();
  }

  /** Subscribes to member state changes (serverId, state, previous); returns the unsubscribe function. */
  onMemberState(listener: MemberStateListener): () => void {
    return this.membership.onState(listener);
  }

  /** Addresses dialed that have not answered a handshake yet (nothing known of who is there). */
  pending(): PendingAddress[] {
    return [...this.links.values()]
      .filter((l) => !l.serverId)
      .map((l) => ({ address: l.address, lastSeenUnixMs: l.lastSeen }))
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  private *linksOf(serverId: string): Iterable<PeerLink> {
    for (const l of this.links.values()) if (l.serverId === serverId) yield l;
  }

  private hasConnectedLink(serverId: string): boolean {
    for (const l of this.linksOf(serverId)) if (l.state === 'connected') return true;
    return false;
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

  /**
   * Sends a message to member `to`, or to every live member when `to` is empty. Resolves with the message
   * ID and the server IDs it was handed to. INVALID_ARGUMENT for a bad server ID (shape or check), topic or body (or this
   * node itself), NOT_FOUND for an unknown member, UNAVAILABLE for one that is down, left or unreachable.
   */
  async sendMessage(to: string, topic: string, body: Buffer, signal?: AbortSignal): Promise<{ id: string; recipients: string[] }> {
    assertTopic(topic);
    assertBody(body);
    if (to) {
      assertServerIdChecked(to); // a typo is INVALID_ARGUMENT, not an unknown member
      if (to === this.opts.serverId) throw new InvalidArgumentError('cannot send a message to this node itself');
      const state = this.membership.state(to);
      if (state === undefined) throw new NotFoundError(`unknown member ${to}`);
      if (state !== 'connected' && state !== 'suspect') throw new UnavailableError(`member ${to} is ${state}`);
    }
    const msg: PeerMessageData = { id: randomBytes(16).toString('hex'), from: this.opts.serverId, to, topic, body, sentUnixMs: this.now() };
    const targets = to ? [to] : this.membership.live();
    const recipients: string[] = [];
    await Promise.all(
      targets.map(async (peerId) => {
        try {
          await this.deliver(peerId, msg, signal);
          recipients.push(peerId);
        } catch (err) {
          if (to) throw err;
          this.log.warn({ peerId, msgId: msg.id, err: (err as Error).message }, 'broadcast not delivered to a member');
        }
      }),
    );
    this.box.accept(msg, this.now());
    this.log.info({ msgId: msg.id, topic, bytes: body.length, to: to || '*', recipients: recipients.length }, 'message sent');
    return { id: msg.id, recipients: recipients.sort() };
  }

  /** Hands `msg` to one member's control stream: this node's link, else the member's inbound stream. */
  private async deliver(peerId: string, msg: PeerMessageData, signal?: AbortSignal): Promise<void> {
    const wire = toWireMessage(msg);
    let old = false;
    for (const l of this.linksOf(peerId)) {
      if (l.state !== 'connected') continue;
      if (l.capabilities.includes(PEER_MESSAGES)) return l.sendControl({ step: { $case: 'message', value: wire } }, signal);
      old = true;
    }
    for (const send of this.inbound.get(peerId) ?? []) {
      if (send.capabilities?.includes(PEER_MESSAGES)) return send({ step: { $case: 'message', value: wire } });
      old = true;
    }
    throw new UnavailableError(old ? `member ${peerId} runs a build without peer messages` : `member ${peerId} has no open control stream`);
  }

  /** Kept messages (sent and received) at or after `sinceUnixMs`, optionally of one topic, oldest first (all pages). */
  messages(sinceUnixMs = 0, topic = ''): KeptMessage[] {
    return this.box.list({ sinceUnixMs, topic, pageBytes: Infinity }).messages;
  }

  /** One page of kept messages (ListMessages); `next` continues it, '' at the end. */
  messagePage(q: MessageQuery): { messages: KeptMessage[]; next: string } {
    return this.box.list(q);
  }

  /**
   * Announces a graceful leave on every open control stream (both directions), waiting at most
   * `timeoutMs` for the notices to be written. Call before stop() on shutdown.
   */
  async leave(timeoutMs = 1000): Promise<void> {
    this.leaving = true;
    // Handshakes of this node's own still in progress would mark it connected on their peers after the notice.
    for (const [address, l] of this.links) {
      if (l.state === 'connected') continue;
      l.stop();
      this.links.delete(address);
    }
    const notice = { sentUnixMs: this.now(), knownPeers: [], leaving: true };
    const writes: Promise<unknown>[] = [];
    for (const l of this.links.values()) {
      if (l.state === 'connected') writes.push(l.sendControl({ step: { $case: 'heartbeat', value: notice } }).catch(() => undefined));
    }
    for (const set of this.inbound.values()) for (const send of set) writes.push(send({ step: { $case: 'heartbeat', value: notice } }).catch(() => undefined));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(writes), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    // Written means handed to HTTP/2, not sent: give the frames a moment before the streams are cancelled.
    if (writes.length) await new Promise((r) => setTimeout(r, Math.min(200, timeoutMs)));
    this.log.info({ streams: writes.length }, 'leave announced');
  }

  stop(): void {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    for (const l of this.links.values()) l.stop();
  }
}
