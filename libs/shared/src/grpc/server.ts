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

/** Builds, binds and starts a server. Resolves once it listens. */
export async function startGrpcServer(opts: {
  host: string;
  port: number;
  services: ServiceEntry[];
  log: Logger;
  credentials?: grpc.ServerCredentials;
}): Promise<RunningServer> {
  const server = new grpc.Server(SERVER_OPTIONS);
  raiseServerWindow(server);
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(opts.services.map((s) => [s.name, 'SERVING' as const])) });
  // Bulk-message codecs (codec.ts): same wire format, far fewer copies of chunk payloads.
  for (const s of opts.services) server.addService(withBulkCodecs(s.definition), s.implementation);
  health.addToServer(server);
  new ReflectionService(reflectionPackage(), {
    services: [...opts.services.map((s) => s.name), 'grpc.health.v1.Health'],
  }).addToServer(server);
  const target = opts.host.includes(':') ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(target, opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    server,
    health,
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
