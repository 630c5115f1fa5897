/**
 * Starting a gRPC server the project's way: transport options, the app's services, grpc.health.v1,
 * and server reflection fed from `buf build` descriptors (so field names stay snake_case).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { DESCRIPTOR_SET_BASE64 } from '../generated/descriptors';
import { FLOW_CONTROL_WINDOW, SERVER_OPTIONS } from './options';
import { withBulkCodecs } from './codec';
import { withDecodeGuard } from './decode-guard';

/** One service to serve: its generated definition, its implementation and its full name. */
export interface ServiceEntry {
  /** Fully qualified name, e.g. `vault.storage.v1.StorageService`. */
  name: string;
  /** The ts-proto generated `...Service` definition. */
  definition: grpc.ServiceDefinition;
  /** The handlers. */
  implementation: grpc.UntypedServiceImplementation;
}

/** A running server. */
export interface RunningServer {
  /** The bound port (the real one when 0 was asked for). */
  port: number;
  /** The server itself. */
  server: grpc.Server;
  /** Health status, per service name ('' is the whole server). */
  health: HealthImplementation;
  /** Port of the health-only listener, when one was asked for (`healthAddress`). */
  healthPort?: number;
  /** Graceful stop, forced after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Splits a FileDescriptorSet (`repeated FileDescriptorProto file = 1`) into the encoded files, untouched.
 * Reflection must serve buf's descriptors as they are: re-encoding them through proto-loader/protobufjs
 * loses each file's dependency list and fully qualified type names, and clients then fail to resolve
 * any service whose messages import another file.
 */
export function splitDescriptorSet(set: Buffer): Buffer[] {
  const files: Buffer[] = [];
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = set[pos++];
      if (b === undefined) throw new Error('truncated descriptor set');
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
    }
  };
  while (pos < set.length) {
    const tag = varint();
    if (tag !== 0x0a) throw new Error(`unexpected field tag ${tag} in descriptor set`);
    const len = varint();
    files.push(set.subarray(pos, pos + len));
    pos += len;
  }
  return files;
}

let descriptorCache: Buffer[] | undefined;

/** The encoded FileDescriptorProtos of every project proto plus grpc.health.v1 (from `buf build`). */
export function descriptorFiles(): Buffer[] {
  descriptorCache ??= splitDescriptorSet(Buffer.from(DESCRIPTOR_SET_BASE64, 'base64'));
  return descriptorCache;
}

/** A package definition carrying the raw descriptors, in the shape @grpc/reflection reads. */
function reflectionPackage(): protoLoader.PackageDefinition {
  return { descriptors: { fileDescriptorProtos: descriptorFiles() } } as unknown as protoLoader.PackageDefinition;
}

/**
 * Raises the HTTP/2 receive window of a grpc-js server. grpc-js exposes the window option only for
 * clients (`grpc-node.flow_control_window`); a server advertises Node's 64 KiB default, which caps
 * upload and replication throughput. grpc-js passes `commonServerOptions` to `http2.createServer`,
 * so setting `settings.initialWindowSize` there makes every session advertise the larger window.
 * Checked by the transport test (`grpc/server.spec.ts`) so a grpc-js upgrade that drops it is noticed.
 */
export function raiseServerWindow(server: grpc.Server, window = FLOW_CONTROL_WINDOW): void {
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (!internals.commonServerOptions) return;
  internals.commonServerOptions.settings = { ...(internals.commonServerOptions.settings ?? {}), initialWindowSize: window };
}

/** Binds `server` to host:port (IPv6 hosts bracketed); resolves with the bound port. */
function bind(server: grpc.Server, host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise<number>((resolve, reject) => server.bindAsync(target, credentials, (err, p) => (err ? reject(err) : resolve(p))));
}

/** Graceful stop of `server`, forced after `graceMs`. */
function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Splits `host:port` / `[v6]:port`. */
function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/**
 * Builds, binds and starts a server. Resolves once it listens.
 *
 * `healthAddress` (host:port) adds a second, plaintext listener that serves grpc.health.v1 only, with the
 * same statuses: the kubelet's native gRPC probe dials the pod IP, so a service that keeps its API on
 * 127.0.0.1 (crypto, storage) or behind TLS (PeerService) exposes just its health there.
 */
export async function startGrpcServer(opts: {
  host: string;
  port: number;
  services: ServiceEntry[];
  log: Logger;
  credentials?: grpc.ServerCredentials;
  healthAddress?: string;
}): Promise<RunningServer> {
  const server = new grpc.Server(SERVER_OPTIONS);
  raiseServerWindow(server);
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(opts.services.map((s) => [s.name, 'SERVING' as const])) });
  // Bulk-message codecs (codec.ts): same wire format, far fewer copies of chunk payloads.
  // Undecodable requests become INVALID_ARGUMENT instead of grpc-js's INTERNAL (decode-guard.ts).
  for (const s of opts.services) server.addService(withDecodeGuard(withBulkCodecs(s.definition)), s.implementation);
  health.addToServer(server);
  new ReflectionService(reflectionPackage(), {
    services: [...opts.services.map((s) => s.name), 'grpc.health.v1.Health'],
  }).addToServer(server);
  const port = await bind(server, opts.host, opts.port, opts.credentials ?? grpc.ServerCredentials.createInsecure());
  let healthServer: grpc.Server | undefined;
  let healthPort: number | undefined;
  if (opts.healthAddress) {
    healthServer = new grpc.Server(SERVER_OPTIONS);
    health.addToServer(healthServer);
    const { host, port: hp } = splitAddress(opts.healthAddress);
    try {
      healthPort = await bind(healthServer, host, hp, grpc.ServerCredentials.createInsecure());
    } catch (err) {
      server.forceShutdown();
      throw err;
    }
  }
  const running: RunningServer = {
    port,
    server,
    health,
    close: async (graceMs = 2000) => {
      await Promise.all([shutdown(server, graceMs), healthServer ? shutdown(healthServer, graceMs) : undefined]);
    },
  };
  if (healthPort !== undefined) running.healthPort = healthPort;
  return running;
}
