/**
 * Transport settings shared by every gRPC server and channel of the project.
 * Objects travel whole in one message (a chunk is at most ~1 MiB, a manifest at most 8 MiB),
 * so message limits sit above the largest object; flow-control windows are raised from HTTP/2's
 * 64 KiB default, which measured about 4x slower here for 1 MiB messages.
 */
import type { ChannelOptions } from '@grpc/grpc-js';

/** Largest object the storage layer accepts: a manifest (chunks are far smaller). */
export const MAX_OBJECT_BYTES = 8 * 1024 * 1024;
/** Largest plaintext chunk a node cuts (its CHUNK_SIZE cannot exceed this). */
export const MAX_CHUNK_PLAINTEXT_BYTES = 1024 * 1024;
/** Largest encrypted chunk accepted anywhere: one maximal plaintext chunk plus envelope overhead. */
export const MAX_CHUNK_OBJECT_BYTES = MAX_CHUNK_PLAINTEXT_BYTES + 1024;
/** gRPC message limit, both directions: the largest object plus room for the frame around it. */
export const MAX_MESSAGE_BYTES = MAX_OBJECT_BYTES + 64 * 1024;
/** HTTP/2 flow-control window for every channel and server. */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

/** Options for every channel (client) in the project. */
export const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Reconnect quickly on loopback and in a cluster; grpc-js backs off exponentially from here.
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 5_000,
};

/** Options for every server in the project. */
export const SERVER_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 10_000,
};
