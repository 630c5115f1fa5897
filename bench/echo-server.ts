/**
 * The transport ceiling of bench/crypto.mjs: a gRPC server built exactly like the crypto-service's
 * (startGrpcServer: the project's server options, raised receive window, health and reflection).
 * Echo answers each unary request with its own bytes: a 1 MiB echo moves what a SealChunk call moves (the
 * payload in, about the payload back) with no work in between, so the service can at best reach its
 * throughput. EchoStream does the same over one bidi stream (would a streaming crypto API pay?).
 * Bundled and started by the bench (esbuild, tsconfig paths); prints the same `listening` line.
 */
import type * as grpc from '@grpc/grpc-js';
import { announceListening, createLogger, onShutdown, startGrpcServer } from '@distri-vault/shared';

const identity = (b: Buffer) => b;
const definition = {
  echo: { path: '/bench.v1.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  echoStream: { path: '/bench.v1.Echo/EchoStream', requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
} as unknown as grpc.ServiceDefinition;
const implementation = {
  echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
  // The same over one bidi stream (what a streaming SealChunks would move): each message written back;
  // the client bounds how many are in flight.
  echoStream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    call.on('data', (m: Buffer) => call.write(m));
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  },
};

async function main(): Promise<void> {
  const log = createLogger('echo', 'warn');
  const server = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [{ name: 'bench.v1.Echo', definition, implementation }] });
  announceListening(log, 'echo', '127.0.0.1', server.port);
  onShutdown(log, () => server.close());
}
void main();
