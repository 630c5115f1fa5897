/**
 * Peer authentication against a real PeerService server over TLS on 127.0.0.1, driven by hand-written
 * hostile clients: impostors, outsiders without the network secret, replayed handshakes, old versions,
 * missing capabilities, and data RPCs without a valid session. Each gets its status and nothing else;
 * nothing is stored. Then the other direction: a dialing node refuses an impostor or non-member server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { createClient, type RunningServer } from '@distri-vault/shared';
import { PeerServiceClient, type HandshakeResponse, type Hello } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { MemoryStorage } from '../testing/memory-ports';
import { dialingNetwork, newSecret, startPeerServer, testPeer, type TestPeer } from '../testing/peer-fixtures';
import { membershipProof, newNonce, PROOF_CONTEXT, signTranscript, transcript, type TranscriptInput } from '../domain/handshake';
import { CAPABILITIES, PROTOCOL_VERSION, SESSION_METADATA_KEY } from '../domain/protocol';
import { peerClientCredentials, PEER_CHANNEL_OPTIONS } from '../adapters/tls';
import type { PeerLink } from '../adapters/peer-link';
import type { PeerNetwork } from '../adapters/network';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const { status } = grpc;

/** Polls `check` every 50 ms until it is true; fails after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('peer authentication (real TLS server, hostile clients)', () => {
  let dir: string;
  let secret: Buffer;
  let server: TestPeer; // B: the node under attack
  let alice: TestPeer; // A: an honest member
  let mallory: TestPeer; // M: has a key of her own, but not the network secret
  let storage: MemoryStorage;
  let srv: RunningServer;
  let serverNet: PeerNetwork;
  let address: string;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peer-auth-'));
    secret = newSecret();
    [server, alice, mallory] = await Promise.all([testPeer(join(dir, 'b'), secret), testPeer(join(dir, 'a'), secret), testPeer(join(dir, 'm'), newSecret())]);
    storage = new MemoryStorage();
    ({ srv, net: serverNet, address } = await startPeerServer(server, storage, log, { heartbeatMs: 500 }));
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    serverNet.stop();
    await srv.close(100);
    await rm(dir, { recursive: true, force: true });
  });

  /** A raw PeerService client over TLS, no interceptor: what a stranger's program would use. */
  function rawClient() {
    const tls = peerClientCredentials();
    const client = createClient(PeerServiceClient, address, tls.credentials, PEER_CHANNEL_OPTIONS);
    clients.push(client);
    return { client, tls };
  }

  interface Attempt {
    /** Who speaks: their key pair and the secret they know. */
    as: TestPeer;
    /** Server ID claimed in Hello (default: as's own). */
    claim?: string;
    /** Public key sent in Hello (default: as's own). */
    publicKey?: Buffer;
    protocolVersion?: number;
    capabilities?: string[];
    /** A whole Hello to send instead (replay). */
    hello?: Hello;
    /** A Proof to send instead of computing one (replay). */
    proof?: { signature: Buffer; membershipProof: Buffer };
    /** Keep the stream open after Accepted (for session tests); the caller cancels it. */
    keepOpen?: boolean;
  }
  interface Outcome {
    code: number | undefined;
    details: string;
    responses: HandshakeResponse[];
    hello: Hello;
    proof?: { signature: Buffer; membershipProof: Buffer };
    token?: string;
    call: grpc.ClientDuplexStream<any, HandshakeResponse>;
  }

  /** Runs one Handshake by hand: Hello, then (if welcomed) a Proof; resolves with what came back. */
  function handshake(a: Attempt): Promise<Outcome> {
    const { client, tls } = rawClient();
    const call = client.handshake();
    const hello: Hello = a.hello ?? {
      protocolVersion: a.protocolVersion ?? PROTOCOL_VERSION,
      serverId: a.claim ?? a.as.identity.serverId,
      advertiseAddress: '127.0.0.1:1',
      knownPeers: [],
      publicKey: a.publicKey ?? a.as.identity.publicKey,
      nonce: newNonce(),
      capabilities: a.capabilities ?? [...CAPABILITIES],
    };
    const out: Outcome = { code: undefined, details: '', responses: [], hello, call };
    return new Promise((resolve) => {
      call.on('data', (msg: HandshakeResponse) => {
        out.responses.push(msg);
        const step = msg.step;
        if (step?.$case === 'welcome') {
          const w = step.value;
          const t: TranscriptInput = {
            dialer: hello,
            responder: { serverId: w.serverId, publicKey: w.publicKey, nonce: w.nonce, protocolVersion: w.protocolVersion, capabilities: w.capabilities },
            certFingerprint: tls.peerFingerprint() ?? Buffer.alloc(0),
          };
          const proofT = transcript(PROOF_CONTEXT, t);
          out.proof = a.proof ?? { signature: signTranscript(a.as.identity.privateKey, proofT), membershipProof: membershipProof(a.as.keys.networkSecret, proofT) };
          call.write({ step: { $case: 'proof', value: out.proof } });
        } else if (step?.$case === 'accepted') {
          out.token = step.value.sessionToken;
          if (a.keepOpen) resolve(out);
          else call.end();
        }
      });
      call.on('error', () => undefined);
      call.on('status', (st: grpc.StatusObject) => {
        out.code = st.code;
        out.details = st.details;
        resolve(out);
      });
      call.write({ step: { $case: 'hello', value: hello } });
    });
  }

  const welcomes = (o: Outcome) => o.responses.filter((r) => r.step?.$case === 'welcome').length;
  const accepted = (o: Outcome) => o.responses.some((r) => r.step?.$case === 'accepted' || r.step?.$case === 'heartbeat');

  it('accepts an honest member: Welcome, then Accepted with a session token, then heartbeats', async () => {
    const o = await handshake({ as: alice, keepOpen: true });
    expect(o.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(welcomes(o)).toBe(1);
    // The Welcome carries no known peers: those come in the heartbeat after Accepted.
    expect(o.responses[0]!.step).toMatchObject({ $case: 'welcome', value: { serverId: server.identity.serverId, knownPeers: [] } });
    await until(() => o.responses.some((r) => r.step?.$case === 'heartbeat'), 10_000, 'a heartbeat');
    o.call.cancel();
  });

  it('refuses an impostor claiming another node\'s server ID with its own key: UNAUTHENTICATED, no Welcome', async () => {
    const o = await handshake({ as: mallory, claim: alice.identity.serverId });
    expect([o.code, o.details]).toEqual([status.UNAUTHENTICATED, expect.stringMatching(/does not belong/)]);
    expect(o.responses).toEqual([]);
  });

  it('refuses an impostor sending another node\'s ID and public key but signing with its own key: UNAUTHENTICATED, no session', async () => {
    const o = await handshake({ as: { ...mallory, keys: { ...mallory.keys, networkSecret: secret } }, claim: alice.identity.serverId, publicKey: alice.identity.publicKey });
    expect([o.code, o.details]).toEqual([status.UNAUTHENTICATED, expect.stringMatching(/bad signature/)]);
    expect(accepted(o)).toBe(false);
    expect(o.token).toBeUndefined();
  });

  it('refuses a peer without the network secret: PERMISSION_DENIED, no session', async () => {
    const o = await handshake({ as: mallory });
    expect([o.code, o.details]).toEqual([status.PERMISSION_DENIED, expect.stringMatching(/not a member/)]);
    expect(accepted(o)).toBe(false);
  });

  it('refuses a replayed handshake: the recorded Hello, and a fresh Hello with the recorded Proof', async () => {
    const first = await handshake({ as: alice });
    expect(first.token).toBeDefined();
    // The same Hello (same nonce) on a new stream: refused at once.
    const replay = await handshake({ as: mallory, hello: first.hello, proof: first.proof });
    expect([replay.code, replay.details]).toEqual([status.UNAUTHENTICATED, expect.stringMatching(/replayed/)]);
    expect(replay.responses).toEqual([]);
    // A fresh Hello in alice's name (anyone can write one), then alice's recorded Proof: not over this
    // server's new nonce, so the signature fails.
    const spliced = await handshake({ as: mallory, claim: alice.identity.serverId, publicKey: alice.identity.publicKey, proof: first.proof });
    expect([spliced.code, spliced.details]).toEqual([status.UNAUTHENTICATED, expect.stringMatching(/bad signature/)]);
    expect(accepted(spliced)).toBe(false);
  });

  it('refuses an old protocol version and a missing capability: FAILED_PRECONDITION, no Welcome', async () => {
    const old = await handshake({ as: alice, protocolVersion: 1 });
    expect([old.code, old.details]).toEqual([status.FAILED_PRECONDITION, expect.stringMatching(/protocol version 1/)]);
    expect(old.responses).toEqual([]);
    const lacking = await handshake({ as: alice, capabilities: CAPABILITIES.filter((c) => c !== 'session-token') });
    expect([lacking.code, lacking.details]).toEqual([status.FAILED_PRECONDITION, expect.stringMatching(/lacks required capabilities: session-token/)]);
    expect(lacking.responses).toEqual([]);
  });

  it('refuses a Handshake whose second message is not a Proof', async () => {
    const { client } = rawClient();
    const call = client.handshake();
    const st = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    call.on('error', () => undefined);
    call.write({ step: { $case: 'hello', value: { protocolVersion: PROTOCOL_VERSION, serverId: alice.identity.serverId, advertiseAddress: '', knownPeers: [], publicKey: alice.identity.publicKey, nonce: newNonce(), capabilities: [...CAPABILITIES] } } });
    call.write({ step: { $case: 'heartbeat', value: { sentUnixMs: 1, knownPeers: [], leaving: false } } });
    expect((await st).code).toBe(status.UNAUTHENTICATED);
  });

  it('refuses a dialer that never sends its Proof, after the proof timeout: UNAUTHENTICATED, no session', async () => {
    const { client } = rawClient();
    const call = client.handshake();
    const responses: HandshakeResponse[] = [];
    call.on('data', (m: HandshakeResponse) => responses.push(m));
    call.on('error', () => undefined);
    const st = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    const sessions = server.auth.sessions.size;
    call.write({ step: { $case: 'hello', value: { protocolVersion: PROTOCOL_VERSION, serverId: alice.identity.serverId, advertiseAddress: '', knownPeers: [], publicKey: alice.identity.publicKey, nonce: newNonce(), capabilities: [...CAPABILITIES] } } });
    const s = await st; // the fixture's proof timeout is 3 s
    expect([s.code, s.details]).toEqual([status.UNAUTHENTICATED, expect.stringMatching(/no proof within/)]);
    expect(responses.map((r) => r.step?.$case)).toEqual(['welcome']);
    expect(server.auth.sessions.size).toBe(sessions);
  });

  describe('data RPCs need a live session', () => {
    /** Runs a raw data call with `token` (or none) in the metadata. */
    function dataCall(method: 'storeChunk' | 'getFile' | 'syncFolder', token: string | undefined, msgs: unknown[]): Promise<{ code: number; details: string; responses: unknown[] }> {
      const { client } = rawClient();
      const md = new grpc.Metadata();
      if (token !== undefined) md.set(SESSION_METADATA_KEY, token);
      const call = (client as any)[method](md) as grpc.ClientDuplexStream<unknown, unknown>;
      const responses: unknown[] = [];
      return new Promise((resolve) => {
        call.on('data', (m) => responses.push(m));
        call.on('error', () => undefined);
        call.on('status', (st: grpc.StatusObject) => resolve({ code: st.code, details: st.details, responses }));
        for (const m of msgs) call.write(m);
        call.end();
      });
    }
    const data = Buffer.from('replica bytes');
    const store = (sender = alice.identity.serverId) => [
      { step: { $case: 'open', value: { senderId: sender, folder: sender } } },
      { step: { $case: 'object', value: { kind: 1, id: sha(data), data } } },
    ];
    let expired: string;

    beforeAll(async () => {
      await storage.put(alice.identity.serverId, 'chunk', sha(Buffer.from('held')), Buffer.from('held'));
      // A token whose control stream has closed since.
      const o = await handshake({ as: alice, keepOpen: true });
      expired = o.token!;
      const gone = new Promise((r) => o.call.on('status', r));
      o.call.cancel();
      await gone;
      await until(() => server.auth.sessions.peerOf(expired) === undefined, 10_000, 'the session to end');
    });

    it.each([
      ['no token', () => undefined],
      ['a forged token', () => randomBytes(32).toString('base64url')],
      ['an expired token (its control stream closed)', () => expired],
    ])('refuses StoreChunk, GetFile and SyncFolder with %s: UNAUTHENTICATED, nothing stored or sent', async (_name, token) => {
      const before = storage.objects.size;
      const s = await dataCall('storeChunk', token(), store());
      expect([s.code, s.responses]).toEqual([status.UNAUTHENTICATED, []]);
      const g = await dataCall('getFile', token(), [{ folder: alice.identity.serverId, objects: [{ kind: 1, id: sha(Buffer.from('held')) }] }]);
      expect([g.code, g.responses]).toEqual([status.UNAUTHENTICATED, []]);
      const y = await dataCall('syncFolder', token(), [{ step: { $case: 'open', value: { folder: alice.identity.serverId } } }]);
      expect([y.code, y.responses]).toEqual([status.UNAUTHENTICATED, []]);
      expect(storage.objects.size).toBe(before);
      expect(storage.ids(alice.identity.serverId, 'chunk')).not.toContain(sha(data));
    });

    it('with a live session: stores for the authenticated peer, refuses another sender_id (PERMISSION_DENIED)', async () => {
      const o = await handshake({ as: alice, keepOpen: true });
      try {
        const before = storage.objects.size;
        const other = await dataCall('storeChunk', o.token, store(mallory.identity.serverId));
        expect([other.code, other.details]).toEqual([status.PERMISSION_DENIED, expect.stringMatching(/not the authenticated peer/)]);
        expect(storage.objects.size).toBe(before);
        const ok = await dataCall('storeChunk', o.token, store());
        expect(ok.code).toBe(status.OK);
        expect(storage.ids(alice.identity.serverId, 'chunk')).toContain(sha(data));
        const g = await dataCall('getFile', o.token, [{ folder: alice.identity.serverId, objects: [{ kind: 1, id: sha(data) }] }]);
        expect(g.code).toBe(status.OK);
        expect(g.responses).toHaveLength(1);
      } finally {
        o.call.cancel();
      }
    });
  });

  describe('the dialing side', () => {
    /** Captures log lines (JSON objects) of a dialing node. */
    function capture() {
      const lines: any[] = [];
      const sink = new Writable({
        write(chunk, _enc, cb) {
          for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
          cb();
        },
      });
      return { lines, log: pino({ level: 'info' }, sink) };
    }
    const linkOf = (net: PeerNetwork, addr: string) => (net as unknown as { links: Map<string, PeerLink> }).links.get(addr)!;

    it('connects to an honest member and its calls carry the session (one interceptor)', async () => {
      const net = dialingNetwork(alice, log);
      try {
        const connected = new Promise<void>((r) => (net.onPeerConnected = () => r()));
        net.start([address]);
        await connected;
        expect(net.connected()).toEqual([server.identity.serverId]);
        const d = Buffer.from('through the link');
        const session = await net.openReplica(server.identity.serverId, alice.identity.serverId);
        await session.send({ kind: 'chunk', id: sha(d), data: d });
        await session.close();
        expect(await net.fetch(server.identity.serverId, alice.identity.serverId, 'chunk', sha(d))).toEqual(d);
      } finally {
        net.stop();
      }
    });

    it('a call made before the link is authenticated waits for the session, then goes through', async () => {
      const net = dialingNetwork(alice, log);
      try {
        net.start([address]);
        const link = linkOf(net, address);
        expect(link.state).not.toBe('connected');
        // Straight away, before the Handshake is done: the interceptor holds the call until the session exists.
        const d = Buffer.from('early call');
        await storage.put(alice.identity.serverId, 'chunk', sha(d), d);
        expect(await link.fetch(alice.identity.serverId, 'chunk', sha(d))).toEqual(d);
        expect(link.state).toBe('connected');
      } finally {
        net.stop();
      }
    });

    it.each([
      ['a non-member server (another network secret)', 'member', /not a member/],
      ['an impostor server (claims another server ID)', 'impostor', /does not belong/],
      ['a server whose signature is not over this TLS channel (relayed handshake)', 'channel', /bad signature/],
    ])('refuses %s: never connected, no Proof sent, backs off', async (_name, kind, why) => {
      const evil = kind === 'member' ? await testPeer(join(dir, `evil-${kind}`), newSecret()) : await testPeer(join(dir, `evil-${kind}`), secret);
      if (kind === 'channel') evil.auth = { ...evil.auth, certFingerprint: randomBytes(32) };
      const evilStorage = new MemoryStorage();
      const started = await startPeerServer(evil, evilStorage, log);
      if (kind === 'impostor') (started.net as unknown as { opts: { serverId: string } }).opts.serverId = server.identity.serverId;
      const { lines, log: dialLog } = capture();
      const net = dialingNetwork(alice, dialLog);
      try {
        net.start([started.address]);
        await until(() => lines.some((l) => l.msg === 'refused the peer: authentication failed'), 15_000, 'the refusal');
        const line = lines.find((l) => l.msg === 'refused the peer: authentication failed');
        expect(line.err).toMatch(why);
        const link = linkOf(net, started.address);
        expect(link.state).not.toBe('connected');
        expect(net.connected()).toEqual([]);
        // The server never got a Proof: it issued no session and learned nothing about alice.
        expect(evil.auth.sessions.size).toBe(0);
        expect(started.net.members()).toEqual([]);
        // Not retried at once (backs off).
        await new Promise((r) => setTimeout(r, 1000));
        expect(lines.filter((l) => l.msg === 'refused the peer: authentication failed')).toHaveLength(1);
        // A call through the unauthenticated link fails UNAVAILABLE rather than going out without a session.
        await expect(link.fetch(alice.identity.serverId, 'chunk', sha(Buffer.from('x')))).rejects.toMatchObject({ code: 'unavailable' });
      } finally {
        net.stop();
        started.net.stop();
        await started.srv.close(100);
      }
    });
  });
});
