/**
 * The authenticated Handshake, as pure functions: transcripts, signatures, membership proofs, the checks
 * each side runs, and the replay cache. grpc glue lives in grpc/peer.grpc.ts (responder) and
 * adapters/peer-link.ts (dialer).
 *
 *   dialer                                   responder
 *   Hello(id_c, pk_c, nonce_c, v, caps)  ->
 *                                        <-  Welcome(id_s, pk_s, nonce_s, v, caps,
 *                                                    sig_s = Ed25519_s(T_welcome), mac_s = HMAC(secret, T_welcome))
 *   Proof(sig_c = Ed25519_c(T_proof), mac_c = HMAC(secret, T_proof))  ->
 *                                        <-  Accepted(session_token)
 *
 * T_welcome and T_proof hold the same fields (both nonces, both server IDs and public keys, the
 * responder's TLS certificate fingerprint, both versions and capability lists) under different context
 * strings, so neither signature nor MAC can be reused as the other. Each side signs over the other's fresh
 * nonce, so a recorded Welcome or Proof is worthless on another stream.
 */
import { createHmac, createPublicKey, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { FailedPreconditionError, hasValidCheck, PermissionDeniedError, UnauthenticatedError } from '@distri-vault/shared';
import { serverIdOf } from './identity';

/** Context string of the responder's Welcome signature and MAC. */
export const WELCOME_CONTEXT = 'distri-vault peer handshake v2: welcome (responder proves)';
/** Context string of the dialer's Proof signature and MAC. */
export const PROOF_CONTEXT = 'distri-vault peer handshake v2: proof (dialer proves)';
/** Bytes of a nonce. */
export const NONCE_BYTES = 32;

/** One side of a Handshake as the transcript records it. */
export interface Party {
  serverId: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  nonce: Uint8Array;
  protocolVersion: number;
  capabilities: readonly string[];
}

/** Everything both transcripts cover. */
export interface TranscriptInput {
  /** The dialing side (sent Hello). */
  dialer: Party;
  /** The dialed side (sent Welcome). */
  responder: Party;
  /** SHA-256 of the responder's TLS certificate (as the responder has it / as the dialer's TLS connection received it). */
  certFingerprint: Uint8Array;
}

/** A fresh random nonce. */
export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

function field(b: Uint8Array): Buffer[] {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return [len, Buffer.from(b.buffer, b.byteOffset, b.byteLength)];
}
const text = (s: string) => field(Buffer.from(s, 'utf8'));
function u32(n: number): Buffer[] {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return field(b);
}
const list = (xs: readonly string[]) => [...u32(xs.length), ...xs.flatMap(text)];
const party = (p: Party) => [...text(p.serverId), ...field(p.publicKey), ...field(p.nonce), ...u32(p.protocolVersion), ...list(p.capabilities)];

/**
 * The byte string one side signs: the context, then every field length-prefixed (u32 big-endian), in a
 * fixed order, so two different inputs never give the same bytes.
 */
export function transcript(context: typeof WELCOME_CONTEXT | typeof PROOF_CONTEXT, t: TranscriptInput): Buffer {
  return Buffer.concat([...text(context), ...party(t.dialer), ...party(t.responder), ...field(t.certFingerprint)]);
}

/** Ed25519 signature over a transcript. */
export function signTranscript(privateKey: KeyObject, data: Buffer): Buffer {
  return sign(null, data, privateKey);
}

/** HMAC-SHA256 of a transcript under the network secret: the membership proof. */
export function membershipProof(networkSecret: Uint8Array, data: Buffer): Buffer {
  return createHmac('sha256', networkSecret).update(data).digest();
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** True when `signature` is `publicKey`'s Ed25519 signature over `data`. Never throws. */
export function verifySignature(publicKey: Uint8Array, data: Buffer, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}

/**
 * The claim of a Hello or Welcome: UnauthenticatedError unless the server ID is well formed with a valid
 * check and derives from the public key, and the nonce has the right size.
 */
export function checkClaim(p: { serverId: string; publicKey: Uint8Array; nonce: Uint8Array }): void {
  if (!hasValidCheck(p.serverId)) throw new UnauthenticatedError('handshake: the server ID is malformed or fails its check');
  if (p.publicKey.length !== 32 || serverIdOf(p.publicKey) !== p.serverId) throw new UnauthenticatedError(`handshake: the public key does not belong to server ID ${p.serverId}`);
  if (p.nonce.length !== NONCE_BYTES) throw new UnauthenticatedError(`handshake: the nonce must be ${NONCE_BYTES} bytes`);
}

/** FailedPreconditionError unless the peer speaks `version` and has every required capability. */
export function checkCompatible(peer: { protocolVersion: number; capabilities: readonly string[] }, version: number, required: readonly string[]): void {
  if (peer.protocolVersion !== version) throw new FailedPreconditionError(`protocol version ${peer.protocolVersion} is not supported; this node speaks ${version}`);
  const missing = required.filter((c) => !peer.capabilities.includes(c));
  if (missing.length) throw new FailedPreconditionError(`peer lacks required capabilities: ${missing.join(', ')}`);
}

/**
 * Checks the other side's proof over `data`: UnauthenticatedError for a bad signature (impostor, replay,
 * a transcript over other nonces or another TLS channel), then PermissionDeniedError for a wrong or
 * missing membership proof (not a member of this network).
 */
export function checkProof(publicKey: Uint8Array, data: Buffer, signature: Uint8Array, proof: Uint8Array, networkSecret: Uint8Array): void {
  if (!verifySignature(publicKey, data, signature)) throw new UnauthenticatedError('handshake: bad signature');
  const want = membershipProof(networkSecret, data);
  if (proof.length !== want.length || !timingSafeEqual(want, proof)) throw new PermissionDeniedError('handshake: not a member of this network (membership proof does not match)');
}

/**
 * Nonces seen recently, bounded: `seen` answers whether a nonce was already used and records it. The
 * oldest entries are forgotten first; a nonce forgotten and replayed still fails, because the Proof must
 * sign over the responder's fresh nonce. This only makes the refusal early.
 */
export class ReplayCache {
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly max = 10_000,
    private readonly ttlMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** True if `nonce` was seen within the TTL (and not yet evicted); otherwise records it and returns false. */
  seen(nonce: Uint8Array): boolean {
    const key = Buffer.from(nonce).toString('base64');
    const t = this.now();
    for (const [k, at] of this.entries) {
      if (t - at < this.ttlMs && this.entries.size < this.max) break;
      this.entries.delete(k);
    }
    if (this.entries.has(key)) return true;
    this.entries.set(key, t);
    return false;
  }

  /** Entries held. */
  get size(): number {
    return this.entries.size;
  }
}

/**
 * Session tokens the responder issues after a successful Handshake: random, bound to the authenticated
 * peer's server ID, valid until `revoke` (when that peer's control stream closes).
 */
export class SessionTable {
  private readonly byToken = new Map<string, string>();

  /** A new token for `peerId`. */
  issue(peerId: string): string {
    const token = randomBytes(32).toString('base64url');
    this.byToken.set(token, peerId);
    return token;
  }

  /** The peer a token was issued to, or undefined when unknown or revoked. */
  peerOf(token: string): string | undefined {
    return this.byToken.get(token);
  }

  /** Ends a session. */
  revoke(token: string): void {
    this.byToken.delete(token);
  }

  /** Live sessions. */
  get size(): number {
    return this.byToken.size;
  }
}
