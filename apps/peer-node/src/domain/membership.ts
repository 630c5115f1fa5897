/**
 * Membership states, keyed by server ID (never by address: one node may be reachable under several).
 * Plain state machine over an injectable clock; the network adapter feeds it events and ticks it.
 *
 *   connecting --handshake--> connected --silent > suspectAfterMs--> suspect --silent > downAfterMs--> down
 *        ^                      ^  ^                                    |                               |
 *        |                      |  +------------- heard ----------------+---------- heard --------------+
 *        |                      +-- handshake -- left <-- leave notice (from any state)
 *   (learned from a peer's list, or never answered: down after downAfterMs)
 *
 * A leave notice (graceful shutdown) moves a member to `left` at once; only a new handshake brings it
 * back (a late heartbeat on another stream does not).
 */

/** How this node sees a member. */
export type MemberState = 'connecting' | 'connected' | 'suspect' | 'down' | 'left';

/** A member as ListNodes and placement see it. */
export interface MemberView {
  /** The member's server ID. */
  serverId: string;
  /** host:port of its PeerService (the address it advertises, when known). */
  address: string;
  /** Current state. */
  state: MemberState;
  /** Unix ms of the last message from it; 0 if never. */
  lastSeenUnixMs: number;
  /** Unix ms of its last state change. */
  sinceUnixMs: number;
}

/** Timeouts of the state machine. */
export interface MembershipOptions {
  /** Silence after which a connected member becomes suspect. */
  suspectAfterMs: number;
  /** Silence after which a member becomes down (also: a member never heard from since it became known). */
  downAfterMs: number;
  /** The clock (Unix ms); Date.now by default. Tests pass a fake one. */
  now?: () => number;
}

/** Called on every state change. */
export type MemberStateListener = (serverId: string, state: MemberState, previous: MemberState | undefined) => void;

interface Member {
  serverId: string;
  address: string;
  state: MemberState;
  lastSeen: number;
  since: number;
}

/** The members this node knows and their states. */
export class Membership {
  private readonly byId = new Map<string, Member>();
  private readonly listeners = new Set<MemberStateListener>();
  private readonly now: () => number;

  constructor(private readonly opts: MembershipOptions) {
    if (!(opts.suspectAfterMs > 0 && opts.downAfterMs > opts.suspectAfterMs)) {
      throw new RangeError(`need 0 < suspectAfterMs (${opts.suspectAfterMs}) < downAfterMs (${opts.downAfterMs})`);
    }
    this.now = opts.now ?? Date.now;
  }

  /** Subscribes to state changes; returns the unsubscribe function. */
  onState(listener: MemberStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A member named by another member's list: known, not yet contacted. Changes no existing state. */
  known(serverId: string, address: string): void {
    const m = this.byId.get(serverId);
    if (m) {
      if (!m.address && address) m.address = address;
      return;
    }
    this.byId.set(serverId, { serverId, address, state: 'connecting', lastSeen: 0, since: this.now() });
    this.emit(serverId, 'connecting', undefined);
  }

  /** A handshake with it completed (either direction): connected, whatever it was. */
  handshake(serverId: string, address: string): void {
    const now = this.now();
    const m = this.byId.get(serverId);
    if (!m) {
      this.byId.set(serverId, { serverId, address, state: 'connected', lastSeen: now, since: now });
      this.emit(serverId, 'connected', undefined);
      return;
    }
    if (address) m.address = address;
    m.lastSeen = now;
    this.set(m, 'connected', now);
  }

  /** Any later message from it (heartbeat, peer message): alive. Revives suspect and down, not left. */
  heard(serverId: string): void {
    const m = this.byId.get(serverId);
    if (!m) return;
    const now = this.now();
    m.lastSeen = now;
    if (m.state === 'suspect' || m.state === 'down') this.set(m, 'connected', now);
  }

  /** It announced a graceful leave. */
  leave(serverId: string): void {
    const m = this.byId.get(serverId);
    if (!m) return;
    m.lastSeen = this.now();
    this.set(m, 'left', m.lastSeen);
  }

  /** Applies the timeouts; call it periodically (a fraction of the heartbeat interval). */
  tick(): void {
    const now = this.now();
    for (const m of this.byId.values()) {
      if (m.state === 'left' || m.state === 'down') continue;
      const silent = now - (m.state === 'connecting' ? Math.max(m.lastSeen, m.since) : m.lastSeen);
      if (silent > this.opts.downAfterMs) this.set(m, 'down', now);
      else if (m.state === 'connected' && silent > this.opts.suspectAfterMs) this.set(m, 'suspect', now);
    }
  }

  /** The state of one member; undefined if unknown. */
  state(serverId: string): MemberState | undefined {
    return this.byId.get(serverId)?.state;
  }

  /** Every member, sorted by server ID. */
  members(): MemberView[] {
    return [...this.byId.values()]
      .map((m) => ({ serverId: m.serverId, address: m.address, state: m.state, lastSeenUnixMs: m.lastSeen, sinceUnixMs: m.since }))
      .sort((a, b) => (a.serverId < b.serverId ? -1 : a.serverId > b.serverId ? 1 : 0));
  }

  /** Members that are connected or suspect (still worth placing data on), sorted. */
  live(): string[] {
    return this.members()
      .filter((m) => m.state === 'connected' || m.state === 'suspect')
      .map((m) => m.serverId);
  }

  private set(m: Member, state: MemberState, now: number): void {
    if (m.state === state) return;
    const previous = m.state;
    m.state = state;
    m.since = now;
    this.emit(m.serverId, state, previous);
  }

  private emit(serverId: string, state: MemberState, previous: MemberState | undefined): void {
    for (const l of this.listeners) l(serverId, state, previous);
  }
}
