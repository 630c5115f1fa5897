/**
 * Prometheus metrics of one gateway, in its own registry: requests by route and status, latency
 * histograms, bytes moved, requests in flight, requests refused by the limits, and the Node process
 * defaults (memory, CPU, event-loop lag). Served at GET /metrics.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'vault_gateway_' });
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
