/**
 * Peer messages: validation, de-duplication by ID, and a bounded ring of the most recent ones.
 * Nothing here knows about transports; the network adapter hands messages in and out.
 */
import { InvalidArgumentError, isServerId } from '@distri-vault/shared';

/** Largest message body, in bytes. */
export const MAX_MESSAGE_BODY_BYTES = 64 * 1024;
/** Topics: 1-64 characters of [A-Za-z0-9._:/-], starting with a letter or digit. */
export const TOPIC_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/;
/** Message IDs: 128 random bits as lowercase hex. */
export const MESSAGE_ID_PATTERN = /^[0-9a-f]{32}$/;

/** One message between nodes. */
export interface PeerMessageData {
  id: string;
  from: string;
  /** Empty for a broadcast. */
  to: string;
  topic: string;
  body: Buffer;
  sentUnixMs: number;
}

/** A message as this node keeps it. */
export interface KeptMessage extends PeerMessageData {
  receivedUnixMs: number;
}

/** Throws InvalidArgumentError unless `topic` is well formed. */
export function assertTopic(topic: string): string {
  if (typeof topic !== 'string' || !TOPIC_PATTERN.test(topic)) {
    throw new InvalidArgumentError(`invalid topic ${JSON.stringify(String(topic).slice(0, 80))}: want 1-64 characters of [A-Za-z0-9._:/-], starting with a letter or digit`);
  }
  return topic;
}

/** Throws InvalidArgumentError unless the body fits. */
export function assertBody(body: Uint8Array): void {
  if (body.length > MAX_MESSAGE_BODY_BYTES) throw new InvalidArgumentError(`message body of ${body.length} bytes is larger than ${MAX_MESSAGE_BODY_BYTES}`);
}

/**
 * Checks a message received from the peer `peerId` by this node `selfId`: well-formed ID, topic and size,
 * sent by that peer (no relaying of others' messages), addressed to this node or to everyone.
 */
export function validateIncoming(msg: PeerMessageData, peerId: string, selfId: string): PeerMessageData {
  if (!MESSAGE_ID_PATTERN.test(msg.id)) throw new InvalidArgumentError('peer message: invalid ID (want 32 lowercase hex characters)');
  if (msg.from !== peerId) throw new InvalidArgumentError(`peer message: sender ${JSON.stringify(msg.from.slice(0, 40))} is not the peer on this stream`);
  if (msg.to !== '' && msg.to !== selfId) {
    throw new InvalidArgumentError(isServerId(msg.to) ? 'peer message: addressed to another node' : 'peer message: invalid recipient');
  }
  assertTopic(msg.topic);
  assertBody(msg.body);
  return msg;
}

/** Body bytes one ListMessages page carries at most (the gRPC message limit is about 1 MiB). */
export const MESSAGE_PAGE_BYTES = 768 * 1024;

/** Which kept messages to list. */
export interface MessageQuery {
  /** Received at or after this Unix ms (0: all). */
  sinceUnixMs?: number;
  /** Only this topic (empty: all). */
  topic?: string;
  /** Only those kept after the message with this ID (empty, or an ID no longer kept: from the oldest). */
  afterId?: string;
  /** Body bytes of one page; at least one message is always returned when any matches. */
  pageBytes?: number;
}

/** The most recent messages (sent and received), deduplicated by ID, bounded in count and in bytes. */
export class MessageBox {
  private readonly ring: KeptMessage[] = [];
  private readonly ids = new Set<string>();
  private bytes = 0;

  /** `capacity`: how many messages are kept; `maxBytes`: their bodies' total size (the oldest go first). */
  constructor(
    readonly capacity = 1000,
    readonly maxBytes = 8 * 1024 * 1024,
  ) {}

  /** Keeps a message; false (and nothing changes) when one with the same ID is already kept. */
  accept(msg: PeerMessageData, receivedUnixMs: number): boolean {
    if (this.ids.has(msg.id)) return false;
    this.ring.push({ ...msg, receivedUnixMs });
    this.ids.add(msg.id);
    this.bytes += msg.body.length;
    while (this.ring.length > this.capacity || this.bytes > this.maxBytes) {
      const old = this.ring.shift()!;
      this.ids.delete(old.id);
      this.bytes -= old.body.length;
    }
    return true;
  }

  /** One page of kept messages matching `q`, oldest first; `next` is the afterId of the next page, '' at the end. */
  list(q: MessageQuery = {}): { messages: KeptMessage[]; next: string } {
    const since = q.sinceUnixMs ?? 0;
    const budget = q.pageBytes ?? MESSAGE_PAGE_BYTES;
    let start = 0;
    if (q.afterId && this.ids.has(q.afterId)) start = this.ring.findIndex((m) => m.id === q.afterId) + 1;
    const out: KeptMessage[] = [];
    let bytes = 0;
    for (let i = start; i < this.ring.length; i++) {
      const m = this.ring[i]!;
      if (m.receivedUnixMs < since || (q.topic && m.topic !== q.topic)) continue;
      if (out.length > 0 && bytes + m.body.length > budget) return { messages: out, next: out[out.length - 1]!.id };
      out.push(m);
      bytes += m.body.length;
    }
    return { messages: out, next: '' };
  }

  /** Number of messages kept. */
  get size(): number {
    return this.ring.length;
  }

  /** Total body bytes kept. */
  get totalBytes(): number {
    return this.bytes;
  }
}
