/**
 * Prometheus metrics of one gateway, in its own registry: requests by route and status, latency
 * histograms, bytes moved, requests in flight, requests refused by the limits, and the Node process
 * defaults (memory, CPU, event-loop lag). Served at GET /metrics.
 *
 * The home node's replication gauges (`vault_node_*`: backlog, per-peer backlog, per-folder health of
 * the last repair pass, each labelled with the node's server ID) are refreshed on each scrape from one GetNodeInfo call bounded by
 * NODE_SCRAPE_TIMEOUT_MS; when the node does not answer in time, `vault_node_up` is 0 and the node
 * gauges are cleared (no stale figures).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { GetNodeInfoResponse } from '@distri-vault/shared/generated/vault/node/v1/node';

/** How long a scrape waits for the home node's figures. */
export const NODE_SCRAPE_TIMEOUT_MS = 1000;

/** The gateway's metrics. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'vault_gateway_requests_total', help: 'HTTP requests answered, by method, route pattern and status', labelNames: ['method', 'route', 'status'] as const, registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'vault_gateway_request_duration_seconds',
    help: 'Time from request to the end of the response, by method and route pattern',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly bytes = new Counter({ name: 'vault_gateway_file_bytes_total', help: 'File bytes moved: in (uploads) and out (downloads)', labelNames: ['direction'] as const, registers: [this.registry] });
  readonly inFlight = new Gauge({ name: 'vault_gateway_requests_in_flight', help: 'Requests being served (health probes excluded)', registers: [this.registry] });
  readonly refused = new Counter({ name: 'vault_gateway_requests_refused_total', help: 'Requests refused by a limit, by reason', labelNames: ['reason'] as const, registers: [this.registry] });

  readonly nodeUp = new Gauge({ name: 'vault_node_up', help: 'Whether the home node answered the last scrape (1) or not (0)', registers: [this.registry] });
  readonly backlogObjects = new Gauge({ name: 'vault_node_replication_backlog_objects', help: 'Copies the home node owes its peers, queued or in flight', labelNames: ['node'] as const, registers: [this.registry] });
  readonly backlogBytes = new Gauge({ name: 'vault_node_replication_backlog_bytes', help: 'Bytes of the copies the home node owes its peers', labelNames: ['node'] as const, registers: [this.registry] });
  readonly backlogPeerObjects = new Gauge({ name: 'vault_node_replication_backlog_peer_objects', help: 'Copies owed to one peer', labelNames: ['node', 'peer'] as const, registers: [this.registry] });
  readonly backlogPeerBytes = new Gauge({ name: 'vault_node_replication_backlog_peer_bytes', help: 'Bytes of the copies owed to one peer', labelNames: ['node', 'peer'] as const, registers: [this.registry] });
  readonly folderObjects = new Gauge({ name: 'vault_node_folder_objects', help: 'Objects of a folder the home node holds, at its last repair pass', labelNames: ['node', 'folder'] as const, registers: [this.registry] });
  readonly underReplicated = new Gauge({
    name: 'vault_node_under_replicated_objects',
    help: 'Objects of a folder below R copies among reachable holders, at the home node\'s last repair pass',
    labelNames: ['node', 'folder'] as const,
    registers: [this.registry],
  });
  readonly soleCopy = new Gauge({ name: 'vault_node_sole_copy_objects', help: 'Objects of a folder no other reachable member holds, at the last repair pass', labelNames: ['node', 'folder'] as const, registers: [this.registry] });
  readonly lastRepair = new Gauge({ name: 'vault_node_last_repair_timestamp_seconds', help: 'When the home node\'s last repair pass finished (Unix seconds)', labelNames: ['node'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'vault_gateway_' });
  }

  /** Sets the node gauges from one GetNodeInfo answer, or clears them (and vault_node_up 0) when it failed. */
  setNode(info: GetNodeInfoResponse | undefined): void {
    for (const g of [this.backlogObjects, this.backlogBytes, this.backlogPeerObjects, this.backlogPeerBytes, this.folderObjects, this.underReplicated, this.soleCopy, this.lastRepair]) g.reset();
    this.nodeUp.set(info ? 1 : 0);
    if (!info) return;
    const node = info.serverId;
    this.backlogObjects.set({ node }, info.backlog?.objects ?? 0);
    this.backlogBytes.set({ node }, info.backlog?.bytes ?? 0);
    for (const p of info.backlogPeers) {
      this.backlogPeerObjects.set({ node, peer: p.serverId }, p.objects);
      this.backlogPeerBytes.set({ node, peer: p.serverId }, p.bytes);
    }
    const l = info.lastRepair;
    if (!l) return;
    this.lastRepair.set({ node }, l.finishedUnixMs / 1000);
    for (const f of l.foldersHealth) {
      this.folderObjects.set({ node, folder: f.folder }, f.objects);
      this.underReplicated.set({ node, folder: f.folder }, f.underReplicated);
      this.soleCopy.set({ node, folder: f.folder }, f.soleCopy);
    }
  }

  /** Records one finished (or aborted) request. */
  observe(r: { method: string; route: string | null; status: number; seconds: number; bytes: number; aborted: boolean }): void {
    const route = r.route ?? 'unmatched';
    const status = r.aborted ? 'aborted' : String(r.status);
    this.requests.inc({ method: r.method, route, status });
    this.latency.observe({ method: r.method, route }, r.seconds);
    // File bytes only: successful uploads and downloads (an error's JSON body is not a file).
    if (r.bytes > 0 && r.status >= 200 && r.status < 300 && (r.method === 'PUT' || r.method === 'GET')) this.bytes.inc({ direction: r.method === 'PUT' ? 'in' : 'out' }, r.bytes);
  }
}
