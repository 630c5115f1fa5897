import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import { serverIdOf } from './identity';
import {
  checkClaim,
  checkCompatible,
  checkProof,
  membershipProof,
  newNonce,
  PROOF_CONTEXT,
  ReplayCache,
  SessionTable,
  signTranscript,
  transcript,
  WELCOME_CONTEXT,
  type TranscriptInput,
} from './handshake';

function keyPair() {
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = Buffer.from(der.subarray(der.length - 32));
  return { privateKey, publicKey, serverId: serverIdOf(publicKey) };
}

const secret = randomBytes(32);
const d = keyPair();
const r = keyPair();
const input = (): TranscriptInput => ({
  dialer: { serverId: d.serverId, publicKey: d.publicKey, nonce: Buffer.alloc(32, 1), protocolVersion: 2, capabilities: ['a', 'b'] },
  responder: { serverId: r.serverId, publicKey: r.publicKey, nonce: Buffer.alloc(32, 2), protocolVersion: 2, capabilities: ['a'] },
  certFingerprint: Buffer.alloc(32, 3),
});

describe('handshake transcripts', () => {
  it('golden vector: the encoding is fixed (context, then length-prefixed fields)', () => {
    const t = transcript(WELCOME_CONTEXT, {
      dialer: { serverId: 'd', publicKey: Buffer.from([1]), nonce: Buffer.from([2]), protocolVersion: 2, capabilities: ['x'] },
      responder: { serverId: 'r', publicKey: Buffer.from([3]), nonce: Buffer.from([4]), protocolVersion: 2, capabilities: [] },
      certFingerprint: Buffer.from([5]),
    });
    const ctx = Buffer.from(WELCOME_CONTEXT);
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const want =
      hex(ctx.length) + ctx.toString('hex') +
      // dialer: id, key, nonce, version (4-byte field), caps (count field, then each)
      '00000001' + '64' + '00000001' + '01' + '00000001' + '02' + '00000004' + '00000002' + '00000004' + '00000001' + '00000001' + '78' +
      // responder
      '00000001' + '72' + '00000001' + '03' + '00000001' + '04' + '00000004' + '00000002' + '00000004' + '00000000' +
      // fingerprint
      '00000001' + '05';
    expect(t.toString('hex')).toBe(want);
  });

  it('differs in every field and between the two contexts', () => {
    const base = transcript(WELCOME_CONTEXT, input());
    expect(transcript(PROOF_CONTEXT, input())).not.toEqual(base);
    const variants: ((t: TranscriptInput) => void)[] = [
      (t) => (t.dialer.nonce = Buffer.alloc(32, 9)),
      (t) => (t.responder.nonce = Buffer.alloc(32, 9)),
      (t) => (t.dialer.serverId = r.serverId),
      (t) => (t.responder.publicKey = d.publicKey),
      (t) => (t.dialer.protocolVersion = 1),
      (t) => (t.responder.capabilities = ['a', 'b']),
      (t) => (t.dialer.capabilities = ['ab']),
      (t) => (t.certFingerprint = Buffer.alloc(32, 4)),
    ];
    for (const change of variants) {
      const t = input();
      change(t);
      expect(transcript(WELCOME_CONTEXT, t)).not.toEqual(base);
    }
  });
});

describe('handshake proofs', () => {
  const t = transcript(WELCOME_CONTEXT, input());
  const sig = signTranscript(r.privateKey, t);
  const mac = membershipProof(secret, t);

  it('accepts the right signer and member', () => {
    expect(() => checkProof(r.publicKey, t, sig, mac, secret)).not.toThrow();
  });
  it('refuses another key, another transcript or a forged signature with UNAUTHENTICATED', () => {
    expect(() => checkProof(d.publicKey, t, sig, mac, secret)).toThrow(expect.objectContaining({ code: 'unauthenticated' }));
    const proofT = transcript(PROOF_CONTEXT, input());
    expect(() => checkProof(r.publicKey, proofT, sig, membershipProof(secret, proofT), secret)).toThrow(expect.objectContaining({ code: 'unauthenticated' }));
    expect(() => checkProof(r.publicKey, t, Buffer.alloc(64), mac, secret)).toThrow(expect.objectContaining({ code: 'unauthenticated' }));
    expect(() => checkProof(r.publicKey, t, Buffer.alloc(0), mac, secret)).toThrow(expect.objectContaining({ code: 'unauthenticated' }));
  });
  it('refuses a wrong or missing membership proof with PERMISSION_DENIED', () => {
    expect(() => checkProof(r.publicKey, t, sig, membershipProof(randomBytes(32), t), secret)).toThrow(expect.objectContaining({ code: 'permission_denied' }));
    expect(() => checkProof(r.publicKey, t, sig, Buffer.alloc(0), secret)).toThrow(expect.objectContaining({ code: 'permission_denied' }));
  });
  it('checks that a claimed server ID derives from the key and has a valid check', () => {
    expect(() => checkClaim({ serverId: d.serverId, publicKey: d.publicKey, nonce: newNonce() })).not.toThrow();
    expect(() => checkClaim({ serverId: r.serverId, publicKey: d.publicKey, nonce: newNonce() })).toThrow(/does not belong/);
    expect(() => checkClaim({ serverId: 'a'.repeat(32), publicKey: d.publicKey, nonce: newNonce() })).toThrow(expect.objectContaining({ code: 'unauthenticated' }));
    expect(() => checkClaim({ serverId: d.serverId, publicKey: d.publicKey, nonce: Buffer.alloc(8) })).toThrow(/nonce/);
  });
  it('checks version and required capabilities with FAILED_PRECONDITION', () => {
    expect(() => checkCompatible({ protocolVersion: 2, capabilities: ['a', 'b'] }, 2, ['a'])).not.toThrow();
    expect(() => checkCompatible({ protocolVersion: 1, capabilities: ['a'] }, 2, ['a'])).toThrow(expect.objectContaining({ code: 'failed_precondition' }));
    expect(() => checkCompatible({ protocolVersion: 2, capabilities: ['b'] }, 2, ['a'])).toThrow(/lacks required capabilities: a/);
  });
});

describe('ReplayCache', () => {
  it('reports a nonce seen before', () => {
    const c = new ReplayCache(10, 60_000);
    const n = newNonce();
    expect(c.seen(n)).toBe(false);
    expect(c.seen(Buffer.from(n))).toBe(true);
    expect(c.seen(newNonce())).toBe(false);
  });
  it('stays bounded, forgetting the oldest first', () => {
    const c = new ReplayCache(100, 60_000);
    const nonces = Array.from({ length: 250 }, () => newNonce());
    for (const n of nonces) expect(c.seen(n)).toBe(false);
    expect(c.size).toBeLessThanOrEqual(100);
    expect(c.seen(nonces[249]!)).toBe(true);
    expect(c.seen(nonces[0]!)).toBe(false); // forgotten (the Proof still fails for a replay: see handshake.ts)
  });
  it('forgets entries after the TTL', () => {
    let now = 0;
    const c = new ReplayCache(100, 1000, () => now);
    const n = newNonce();
    c.seen(n);
    now = 500;
    expect(c.seen(n)).toBe(true);
    now = 2000;
    expect(c.seen(newNonce())).toBe(false);
    expect(c.size).toBe(1);
  });
});

describe('SessionTable', () => {
  it('issues random tokens bound to a peer until revoked', () => {
    const s = new SessionTable();
    const a = s.issue(d.serverId);
    const b = s.issue(d.serverId);
    expect(a).not.toBe(b);
    expect(a.length).toBeGreaterThanOrEqual(43);
    expect(s.peerOf(a)).toBe(d.serverId);
    s.revoke(a);
    expect(s.peerOf(a)).toBeUndefined();
    expect(s.peerOf(b)).toBe(d.serverId);
    expect(s.peerOf('')).toBeUndefined();
  });
});
