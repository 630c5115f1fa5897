/**
 * peer-node: bootstrap only. config -> logger -> identity -> services -> vault -> servers -> network.
 */
import { announceListening, createLogger, failStartup, onShutdown, startGrpcServer } from '@distri-vault/shared';
import { NodeServiceService } from '@distri-vault/shared/generated/vault/node/v1/node';
import { PeerServiceService } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { readConfig } from './config';
import { loadOrCreateIdentity } from './domain/identity';
import { ReplayCache, SessionTable } from './domain/handshake';
import { loadNetworkSecret } from './adapters/network-secret';
import { loadOrCreateTls, peerServerCredentials } from './adapters/tls';
import { Vault } from './domain/vault';
import { AntiEntropy } from './domain/recovery';
import type { StoragePort } from './domain/ports';
import { GraceMembership } from './domain/liveness';
import { Garbage } from './domain/garbage';
import { ReplicationBacklog, TokenBucket } from './domain/replication';
import { Replicator, type RepairReport } from './domain/replicator';
import { PeerNetwork } from './adapters/network';
import { DnsDiscovery } from './adapters/discovery';
import { CryptoServiceAdapter, StorageServiceAdapter } from './adapters/services';
import { nodeServer } from './grpc/node.grpc';
import { peerServer } from './grpc/peer.grpc';

/** True when the folder holds no object of either kind. */
async function folderIsEmpty(storage: StoragePort, folder: string, signal: AbortSignal): Promise<boolean> {
  for (const kind of ['manifest', 'chunk'] as const) {
    for await (const ids of storage.list(folder, kind, signal)) if (ids.length) return false;
  }
  return true;
}

async function main(): Promise<void> {
  const log = createLogger('peer-node', process.env['LOG_LEVEL']);
  try {
    const cfg = readConfig();
    const { identity, created } = await loadOrCreateIdentity(cfg.NODE_IDENTITY_DIR);
    const nodeLog = log.child({ node: identity.serverId });
    nodeLog.info({ created, identityDir: cfg.NODE_IDENTITY_DIR }, created ? 'identity created' : 'identity loaded');
    // Peer authentication (README "How peers authenticate"): the network secret and this node's TLS certificate.
    const { secret: networkSecret, worldReadable } = await loadNetworkSecret(cfg.NODE_NETWORK_SECRET_FILE);
    if (worldReadable) nodeLog.warn({ file: cfg.NODE_NETWORK_SECRET_FILE }, 'the network secret is readable by every user of this machine; chmod 600 it');
    const tlsDir = cfg.NODE_TLS_DIR ?? cfg.NODE_IDENTITY_DIR;
    const { tls, created: tlsCreated } = await loadOrCreateTls(tlsDir, identity.serverId);
    nodeLog.info({ tlsDir, fingerprint: tls.fingerprint.toString('hex') }, tlsCreated ? 'TLS certificate created' : 'TLS certificate loaded');
    const keys = { publicKey: identity.publicKey, privateKey: identity.privateKey, networkSecret };
    const auth = { ...keys, certFingerprint: tls.fingerprint, sessions: new SessionTable(), replay: new ReplayCache() };

    const crypto = new CryptoServiceAdapter(cfg.NODE_CRYPTO_ADDRESS, cfg.NODE_SERVICE_TIMEOUT_MS);
    const storage = new StorageServiceAdapter(cfg.NODE_STORAGE_ADDRESS, cfg.NODE_SERVICE_TIMEOUT_MS);

    const network = new PeerNetwork(
      {
        serverId: identity.serverId,
        heartbeatMs: cfg.NODE_HEARTBEAT_MS,
        window: cfg.NODE_WINDOW,
        auth: keys,
        suspectAfterMs: cfg.NODE_SUSPECT_AFTER_MS,
        downAfterMs: cfg.NODE_DOWN_AFTER_MS,
      },
      nodeLog,
    );
    // Tombstones of garbage-collected objects, from the GC records on this node's disk (domain/garbage.ts).
    const garbage = new Garbage({ storage, log: nodeLog });
    const peerSrv = await startGrpcServer({
      host: cfg.NODE_HOST,
      port: cfg.NODE_PEER_PORT,
      log: nodeLog,
      services: [{ name: 'vault.peer.v1.PeerService', definition: PeerServiceService, implementation: peerServer({ log: nodeLog, storage, garbage, network, window: cfg.NODE_WINDOW, auth }) }],
      credentials: peerServerCredentials(tls),
    });
    // The advertised address defaults to the bound port, known only now.
    network.advertiseAddress = cfg.NODE_ADVERTISE_ADDRESS ?? `${cfg.NODE_HOST}:${peerSrv.port}`;
    const stopping = new AbortController();
    // Copies owed to peers (uploads' background copies and repair pushes); repair is rate-limited.
    const replication = new ReplicationBacklog(
      { storage, peers: network, log: nodeLog },
      { window: cfg.NODE_WINDOW, repairBucket: new TokenBucket(cfg.NODE_REPAIR_RATE_BYTES, Math.max(cfg.NODE_REPAIR_RATE_BYTES / 4, 4 * 1024 * 1024)), signal: stopping.signal },
    );
    const vault = new Vault(
      { crypto, storage, peers: network, log: nodeLog, replication, gc: { garbage, signer: identity } },
      { serverId: identity.serverId, chunkSize: cfg.NODE_CHUNK_SIZE, replicas: cfg.NODE_REPLICAS, window: cfg.NODE_WINDOW, writeQuorum: cfg.NODE_WRITE_QUORUM, writeTimeoutMs: cfg.NODE_WRITE_TIMEOUT_MS, hedgeMs: cfg.NODE_HEDGE_MS, recoveryLogMs: cfg.NODE_RECOVERY_LOG_MS, memoryBudgetBytes: cfg.NODE_MEMORY_BUDGET_BYTES },
    );

    const files = await vault.loadIndex(stopping.signal);
    nodeLog.info({ files }, 'index loaded');

    // Anti-entropy: whenever a peer (re)connects, and every NODE_SYNC_INTERVAL_MS, pull whatever this
    // node's own folder lacks (summaries: only differing buckets are listed). A node started on an empty
    // folder (wiped disk, identity and key kept) runs a recovery, with progress, when its first peer connects.
    const antiEntropy = new AntiEntropy(vault, nodeLog, { intervalMs: cfg.NODE_SYNC_INTERVAL_MS });
    antiEntropy.recoverOnFirstPeer = await folderIsEmpty(storage, identity.serverId, stopping.signal);
    if (antiEntropy.recoverOnFirstPeer) nodeLog.info('own folder is empty: it will be recovered from the first peer that connects');
    network.onPeerConnected = (peerId) => antiEntropy.peerConnected(peerId);
    antiEntropy.start();

    // Repair and rebalancing: a pass every NODE_REPAIR_INTERVAL_MS, and soon after any membership change
    // (a member joins, returns, or passes the grace period).
    const membership = new GraceMembership(identity.serverId, () => network.connected(), cfg.NODE_REPAIR_GRACE_MS);
    const replicator = new Replicator({ storage, peers: network, membership, backlog: replication, garbage, log: nodeLog }, { serverId: identity.serverId, replicas: cfg.NODE_REPLICAS });
    let lastRepair: (RepairReport & { finishedUnixMs: number }) | undefined;
    const repair = (why: string) => {
      if (stopping.signal.aborted) return;
      replicator.trigger(stopping.signal).then(
        (r) => {
          lastRepair = { ...r, finishedUnixMs: Date.now() };
          nodeLog.debug({ why, repair: r }, 'repair pass done');
        },
        (err) => {
          if (!stopping.signal.aborted) nodeLog.warn({ why, err: (err as Error).message }, 'repair pass failed');
        },
      );
    };
    let changeTimer: NodeJS.Timeout | undefined;
    const memberTick = setInterval(() => {
      const ch = membership.tick();
      if (ch.joined.length || ch.returned.length || ch.gone.length) {
        nodeLog.info({ joined: ch.joined, returned: ch.returned, gone: ch.gone }, 'membership changed');
        // Let the handshakes of a burst of joins settle before one pass.
        if (changeTimer) clearTimeout(changeTimer);
        changeTimer = setTimeout(() => repair('membership'), 1000);
        changeTimer.unref();
      }
    }, Math.max(50, Math.min(1000, Math.floor(cfg.NODE_REPAIR_GRACE_MS / 4))));
    memberTick.unref();
    const repairTimer = setInterval(() => repair('interval'), cfg.NODE_REPAIR_INTERVAL_MS);
    repairTimer.unref();
    let lastBacklog = 0;
    const backlogTimer = setInterval(() => {
      const b = replication.stats();
      if (b.objects || lastBacklog) nodeLog.info({ backlog: b.objects, bytes: b.bytes, peers: b.peers, failed: b.failed }, 'replication backlog');
      lastBacklog = b.objects;
    }, 10_000);
    backlogTimer.unref();

    const clientSrv = await startGrpcServer({
      host: cfg.NODE_HOST,
      port: cfg.NODE_CLIENT_PORT,
      log: nodeLog,
      services: [
        {
          name: 'vault.node.v1.NodeService',
          definition: NodeServiceService,
          implementation: nodeServer({ log: nodeLog, vault, network, chunkSize: cfg.NODE_CHUNK_SIZE, replicas: cfg.NODE_REPLICAS, lastRepair: () => lastRepair, garbage: () => garbage.stats() }),
        },
      ],
    });
    network.start(cfg.NODE_BOOTSTRAP);
    const discovery = cfg.NODE_DISCOVERY_DNS
      ? new DnsDiscovery({ target: cfg.NODE_DISCOVERY_DNS, intervalMs: cfg.NODE_DISCOVERY_INTERVAL_MS }, (addresses) => addresses.forEach((a) => network.addAddress(a)), nodeLog)
      : undefined;
    discovery?.start();
    announceListening(nodeLog, 'node-peer', cfg.NODE_HOST, peerSrv.port);
    announceListening(nodeLog, 'node-client', cfg.NODE_HOST, clientSrv.port);

    onShutdown(nodeLog, async () => {
      stopping.abort();
      discovery?.stop();
      // Tell the peers first, so they mark this node `left` at once instead of waiting for the timeouts.
      await network.leave();
      antiEntropy.stop();
      clearInterval(memberTick);
      clearInterval(repairTimer);
      clearInterval(backlogTimer);
      if (changeTimer) clearTimeout(changeTimer);
      network.stop();
      await Promise.all([clientSrv.close(), peerSrv.close()]);
      crypto.close();
      storage.close();
    });
  } catch (err) {
    failStartup(log, err);
  }
}

void main();
