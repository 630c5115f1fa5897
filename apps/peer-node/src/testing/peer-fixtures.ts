/**
 * Real peers for gRPC tests: an identity, a TLS certificate and the network secret in a temp dir, a
 * PeerService server on 127.0.0.1:0 over TLS, and a PeerNetwork that dials with them.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { startGrpcServer, type RunningServer } from '@distri-vault/shared';
import { PeerServiceService } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { loadOrCreateIdentity, type Identity } from '../domain/identity';
import { ReplayCache, SessionTable } from '../domain/handshake';
import type { StoragePort } from '../domain/ports';
import { loadOrCreateTls, peerServerCredentials, type TlsMaterial } from '../adapters/tls';
import { PeerNetwork } from '../adapters/network';
import type { LinkAuth } from '../adapters/peer-link';
import { peerServer, type PeerServerAuth } from '../grpc/peer.grpc';
import { Garbage } from '../domain/garbage';

/** A node's credentials. */
export interface TestPeer {
  identity: Identity;
  tls: TlsMaterial;
  /** What its links dial with. */
  keys: LinkAuth;
  /** What its server authenticates with. */
  auth: PeerServerAuth;
}

/** A new network secret. */
export const newSecret = (): Buffer => randomBytes(32);

/** Creates a node's identity and TLS certificate under `dir`. */
export async function testPeer(dir: string, networkSecret: Buffer): Promise<TestPeer> {
  const { identity } = await loadOrCreateIdentity(join(dir, 'identity'));
  const { tls } = await loadOrCreateTls(join(dir, 'identity'), identity.serverId);
  const keys = { publicKey: identity.publicKey, privateKey: identity.privateKey, networkSecret };
  return { identity, tls, keys, auth: { ...keys, certFingerprint: tls.fingerprint, sessions: new SessionTable(), replay: new ReplayCache(), proofTimeoutMs: 3000 } };
}

/** Starts `peer`'s PeerService (TLS) over `storage`; resolves with the server and its network. */
export async function startPeerServer(peer: TestPeer, storage: StoragePort, log: Logger, opts: { heartbeatMs?: number; window?: number } = {}): Promise<{ srv: RunningServer; net: PeerNetwork; address: string }> {
  const window = opts.window ?? 4;
  const net = new PeerNetwork({ serverId: peer.identity.serverId, heartbeatMs: opts.heartbeatMs ?? 200, window, auth: peer.keys }, log);
  const srv = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    log,
    services: [{ name: 'vault.peer.v1.PeerService', definition: PeerServiceService, implementation: peerServer({ log, storage, garbage: new Garbage({ storage, log }), network: net, window, auth: peer.auth }) }],
    credentials: peerServerCredentials(peer.tls),
  });
  net.advertiseAddress = `127.0.0.1:${srv.port}`;
  return { srv, net, address: net.advertiseAddress };
}

/** A network that only dials (its advertised address is a dummy). */
export function dialingNetwork(peer: TestPeer, log: Logger, heartbeatMs = 200): PeerNetwork {
  const net = new PeerNetwork({ serverId: peer.identity.serverId, heartbeatMs, window: 4, auth: peer.keys, sessionWaitMs: 1000 }, log);
  net.advertiseAddress = '127.0.0.1:1';
  return net;
}
