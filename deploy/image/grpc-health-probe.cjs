#!/usr/bin/env node
'use strict';
/**
 * grpc.health.v1.Health/Check against host:port, for exec probes of gRPC servers that listen on the pod's
 * loopback (the kubelet's native gRPC probe dials the pod IP). Node core only (http2), no dependencies.
 *
 *   node grpc-health-probe.cjs 127.0.0.1:7102 [service] [timeoutMs]
 *   node grpc-health-probe.cjs https://127.0.0.1:7101     TLS (the PeerService), certificate not checked:
 *                                                        the kubelet's native gRPC probe cannot speak TLS
 *
 * Exit 0 when the server answers SERVING, 1 otherwise (NOT_SERVING, a gRPC error, no answer in time).
 */
const http2 = require('node:http2');

const [target, service = '', timeoutArg = '2000'] = process.argv.slice(2);
const tls = typeof target === 'string' && target.startsWith('https://');
const address = tls ? target.slice('https://'.length) : target;
if (!address || !/^[^\s/]+:\d{1,5}$/.test(address)) {
  console.error('usage: grpc-health-probe.cjs [https://]host:port [service] [timeoutMs]');
  process.exit(2);
}
const timeoutMs = Number(timeoutArg);
const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function fail(msg) {
  console.error(`${address}: ${msg}`);
  process.exit(1);
}

// HealthCheckRequest { string service = 1; } as one length-prefixed gRPC message.
const name = Buffer.from(service, 'utf8');
if (name.length > 127) fail('service name too long');
const body = name.length ? Buffer.concat([Buffer.from([0x0a, name.length]), name]) : Buffer.alloc(0);
const frame = Buffer.alloc(5 + body.length);
frame.writeUInt32BE(body.length, 1);
body.copy(frame, 5);

const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
// Self-signed peer certificates have no CA to check against; the probe only asks whether the server answers.
// servername: a fixed name, so Node does not warn about an IP address as TLS server name (DEP0123).
const session = tls
  ? http2.connect(`https://${address}`, { rejectUnauthorized: false, servername: 'distri-vault-peer' })
  : http2.connect(`http://${address}`);
session.on('error', (err) => fail(err.message));
const req = session.request({
  ':method': 'POST',
  ':path': '/grpc.health.v1.Health/Check',
  'content-type': 'application/grpc',
  te: 'trailers',
});
const chunks = [];
let grpcStatus;
req.on('response', (headers) => {
  if (headers['grpc-status'] !== undefined) grpcStatus = String(headers['grpc-status']);
});
req.on('trailers', (trailers) => {
  grpcStatus = String(trailers['grpc-status']);
});
req.on('data', (d) => chunks.push(d));
req.on('error', (err) => fail(err.message));
req.on('end', () => {
  clearTimeout(timer);
  session.close();
  if (grpcStatus !== '0') fail(`grpc-status ${grpcStatus ?? 'missing'}`);
  const msg = Buffer.concat(chunks).subarray(5);
  // HealthCheckResponse { ServingStatus status = 1; }: field 1, varint. Absent means UNKNOWN (0).
  const status = msg.length >= 2 && msg[0] === 0x08 ? msg[1] : 0;
  if (status !== 1) fail(STATUS[status] ?? `status ${status}`);
  process.exit(0);
});
req.end(frame);
