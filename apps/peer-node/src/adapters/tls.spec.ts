import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { createServer, connect as netConnect, isIP, type Socket } from 'node:net';
import pino from 'pino';
import { createClient, startGrpcServer } from '@distri-vault/shared';
import { loadOrCreateTls, peerClientCredentials, peerServerCredentials, PEER_CHANNEL_OPTIONS } from './tls';

const log = pino({ level: 'silent' });
/** A bare grpc.health.v1 client (empty request; the response's raw bytes). */
const Health = grpc.makeGenericClientConstructor(
  { check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: () => Buffer.alloc(0), requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
  'Health',
) as unknown as new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client;
function check(client: grpc.Client, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    (client as any).check(Buffer.alloc(0), { deadline: Date.now() + timeoutMs }, (err: Error | null, r: Buffer) => (err ? reject(err) : resolve(r))),
  );
}

describe('peer TLS', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tls-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('creates a self-signed ECDSA P-256 certificate once (key 0600) and reuses it', async () => {
    const a = await loadOrCreateTls(dir, 'x'.repeat(32));
    expect(a.created).toBe(true);
    expect((await stat(join(dir, 'tls-key.pem'))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(a.tls.certPem);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(a.tls.fingerprint.toString('hex')).toBe(cert.fingerprint256.replace(/:/g, '').toLowerCase());
    const b = await loadOrCreateTls(dir, 'x'.repeat(32));
    expect(b.created).toBe(false);
    expect(b.tls.fingerprint).toEqual(a.tls.fingerprint);
  });

  it('serves TLS; the client records the certificate it received, with a server name that is not an IP address (no DEP0123)', async () => {
    const { tls } = await loadOrCreateTls(dir, 'x'.repeat(32));
    const srv = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [], credentials: peerServerCredentials(tls) });
    // Node warns (DEP0123) when a TLS client sends an IP address as server name: record what grpc-js asks for.
    const nodeTls = require('node:tls') as typeof import('node:tls'); // eslint-disable-line @typescript-eslint/no-require-imports
    const connect = nodeTls.connect;
    const servernames: (string | undefined)[] = [];
    (nodeTls as { connect: unknown }).connect = (...args: any[]) => {
      servernames.push(args.find((a) => a && typeof a === 'object')?.servername);
      return (connect as (...a: unknown[]) => unknown)(...args);
    };
    try {
      const creds = peerClientCredentials();
      expect(creds.peerFingerprint()).toBeUndefined();
      const health = createClient(Health, `127.0.0.1:${srv.port}`, creds.credentials, PEER_CHANNEL_OPTIONS);
      expect(await check(health)).toEqual(Buffer.from([8, 1])); // SERVING
      expect(creds.peerFingerprint()).toEqual(tls.fingerprint);
      // Plaintext to the TLS server gets nothing.
      const plain = createClient(Health, `127.0.0.1:${srv.port}`);
      await expect(check(plain, 3000)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      health.close();
      plain.close();
      expect(servernames.length).toBeGreaterThan(0);
      for (const name of servernames) expect({ name, ip: isIP(name ?? '') !== 0 }).toEqual({ name: 'distri-vault-peer', ip: false });
    } finally {
      (nodeTls as { connect: unknown }).connect = connect;
      await srv.close(100);
    }
  });

  it('drops a connection whose TLS handshake stalls (a black-holed path) and dials again', async () => {
    const { tls } = await loadOrCreateTls(dir, 'x'.repeat(32));
    const srv = await startGrpcServer({ host: '127.0.0.1', port: 0, log, services: [], credentials: peerServerCredentials(tls) });
    // A path that accepts TCP but loses everything on the first connection; later ones reach the server.
    let connections = 0;
    const sockets: Socket[] = [];
    const hole = createServer((s) => {
      sockets.push(s);
      s.on('error', () => undefined);
      if (++connections === 1) return void s.resume();
      const up = netConnect(srv.port, '127.0.0.1');
      up.on('error', () => s.destroy());
      sockets.push(up);
      s.pipe(up).pipe(s);
    });
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    const port = (hole.address() as { port: number }).port;
    const health = createClient(Health, `127.0.0.1:${port}`, peerClientCredentials(300).credentials, PEER_CHANNEL_OPTIONS);
    try {
      // Without the bound, the first connection waits for a ServerHello that never comes, and so does the call.
      await new Promise<void>((resolve, reject) =>
        (health as any).check(Buffer.alloc(0), new grpc.Metadata({ waitForReady: true }), { deadline: Date.now() + 8000 }, (err: Error | null) => (err ? reject(err) : resolve())),
      );
      expect(connections).toBeGreaterThanOrEqual(2);
    } finally {
      health.close();
      sockets.forEach((s) => s.destroy());
      await new Promise((r) => hole.close(r));
      await srv.close(100);
    }
  });
});
