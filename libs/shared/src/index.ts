/** Shared library: generated contracts, errors, IDs, config, logging and gRPC glue. */
export * from './errors';
export * from './ids';
export * from './config';
export * from './logger';
export * from './grpc/options';
export * from './grpc/status';
export * from './grpc/server';
export * from './grpc/handlers';
export * from './grpc/client';
export * from './grpc/streams';
export * from './grpc/codec';
export * from './grpc/decode-guard';
export * from './process';
export * from './encoding';
