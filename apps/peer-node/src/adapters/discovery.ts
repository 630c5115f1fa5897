/**
 * DNS discovery: resolves one `name:port` (a Kubernetes headless Service gives one A record per ready, or
 * with publishNotReadyAddresses every, pod) at start and then periodically; every address found becomes a
 * peer address (`ip:port`). The network skips this node's own advertised address and recognises itself
 * under any other address by its handshake, and dedupes members reachable under several addresses.
 */
import { promises as dns } from 'node:dns';
import type { Logger } from 'pino';

/** Resolves a host name to its addresses (IPv4 or IPv6 literals). */
export type Resolver = (host: string) => Promise<string[]>;

/** The system resolver (getaddrinfo: DNS and the hosts file), every address of the name. */
// Looked up on the module object at each call, so a preload that stands in for cluster DNS is honoured.
export const systemResolver: Resolver = async (host) => (await dns.lookup(host, { all: true })).map((a) => a.address);

/** Options of a DnsDiscovery. */
export interface DnsDiscoveryOptions {
  /** `name:port` to resolve. */
  target: string;
  /** Pause between resolutions. */
  intervalMs: number;
  /** Resolver; the system one by default. Tests inject their own. */
  resolve?: Resolver;
}

/** `ip:port`, bracketing IPv6 literals. */
export function peerAddress(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Periodic resolution of one name into peer addresses. */
export class DnsDiscovery {
  private readonly host: string;
  private readonly port: number;
  private readonly resolve: Resolver;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Addresses of the last successful resolution, sorted. */
  last: string[] = [];

  constructor(
    private readonly opts: DnsDiscoveryOptions,
    private readonly found: (addresses: string[]) => void,
    private readonly log: Logger,
  ) {
    const i = opts.target.lastIndexOf(':');
    this.host = opts.target.slice(0, i);
    this.port = Number(opts.target.slice(i + 1));
    if (!this.host || !Number.isInteger(this.port) || this.port < 1 || this.port > 65535) throw new RangeError(`discovery target ${opts.target}: want name:port`);
    this.resolve = opts.resolve ?? systemResolver;
  }

  /** Resolves now, then every intervalMs until stop(). */
  start(): void {
    void this.once().finally(() => this.schedule());
  }

  /** One resolution; failures are logged (the name may not exist yet while pods start) and retried later. */
  async once(): Promise<string[]> {
    try {
      const ips = await this.resolve(this.host);
      const addresses = [...new Set(ips.map((ip) => peerAddress(ip, this.port)))].sort();
      if (addresses.join(',') !== this.last.join(',')) this.log.info({ name: this.host, addresses }, 'discovered peers by DNS');
      this.last = addresses;
      if (!this.stopped) this.found(addresses);
      return addresses;
    } catch (err) {
      this.log.warn({ name: this.host, err: (err as Error).message }, 'DNS discovery failed; retrying later');
      return [];
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.once().finally(() => this.schedule()), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
