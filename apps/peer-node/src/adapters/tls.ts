/**
 * TLS for PeerService: each node's self-signed certificate (ECDSA P-256), the server credentials built
 * from it, and the client credentials peers dial with.
 *
 * There is no CA: a peer's certificate is not verified by TLS (`rejectUnauthorized: false`), the peer is
 * authenticated by the Handshake instead (its Ed25519 key behind its server ID, and the network secret).
 * The Handshake is bound to the TLS channel: the responder signs over the SHA-256 fingerprint of its
 * certificate, and the dialer puts the fingerprint of the certificate its TLS connection actually received
 * into the transcript it checks, so a man in the middle that terminates TLS with its own certificate
 * cannot relay a Handshake (and take the session token) without the signature failing.
 *
 * How the dialer learns the fingerprint. grpc-js 1.14.7 fills a client call's `getAuthContext()` with the
 * peer certificate only when the TLS socket is `authorized` (chain verified), and Node calls
 * `checkServerIdentity` only after the chain verified; with a self-signed certificate and
 * `rejectUnauthorized: false` neither ever sees it. So `peerClientCredentials` wraps the credentials'
 * secure connector (grpc-js `ChannelCredentials._createSecureConnector`, internal but stable across 1.x)
 * and records the certificate of every TLS connection it makes. Each PeerLink gets its own credentials
 * and its own subchannel (`grpc.use_local_subchannel_pool`), so what it records is its own connection (and
 * what its `dropConnections` ends, when the link's path went silent, are its own connections).
 * `tls.spec`/`auth.spec` fail if a grpc-js upgrade breaks this.
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';

/** This node's TLS certificate and key, PEM. */
export interface TlsMaterial {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the certificate's DER: what the Handshake binds to. */
  fingerprint: Buffer;
}

const CERT_FILE = 'tls-cert.pem';
const KEY_FILE = 'tls-key.pem';
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** SHA-256 of a DER certificate. */
export function certFingerprint(der: Uint8Array): Buffer {
  return createHash('sha256').update(der).digest();
}

async function writeAtomic(path: string, body: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/**
 * Loads this node's TLS certificate from `dir`, creating it (key 0600) on first start. The certificate is
 * self-signed, ECDSA P-256, valid for 20 years, named after the server ID (for people reading it; nothing
 * checks the name).
 */
export async function loadOrCreateTls(dir: string, serverId: string): Promise<{ tls: TlsMaterial; created: boolean }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  let certPem: string | undefined;
  let keyPem: string | undefined;
  try {
    [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (certPem !== undefined && keyPem !== undefined) {
    const cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`TLS key ${keyPath} does not belong to certificate ${certPath}; delete both to create new ones`);
    return { tls: { certPem, keyPem, fingerprint: certFingerprint(cert.raw) }, created: false };
  }
  const crypto = webcrypto as unknown as NonNullable<Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1]>;
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=distri-vault peer ${serverId}`,
      notBefore: new Date(now - 60 * 60 * 1000),
      notAfter: new Date(now + 20 * 365 * 24 * 60 * 60 * 1000),
      signingAlgorithm: ALG,
      keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'],
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      ],
    },
    crypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
  certPem = cert.toString('pem') + '\n';
  await writeAtomic(keyPath, keyPem, 0o600);
  await writeAtomic(certPath, certPem, 0o644);
  return { tls: { certPem, keyPem, fingerprint: certFingerprint(Buffer.from(cert.rawData)) }, created: true };
}

/** Server credentials for PeerService: this node's certificate, no client certificates asked for. */
export function peerServerCredentials(tls: TlsMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(tls.certPem), private_key: Buffer.from(tls.keyPem) }], false);
}

/**
 * Channel options every peer client needs besides the project's: its own subchannel (so the credentials'
 * record of the peer certificate is this link's), and a fixed TLS server name (the address is often an IP
 * address; Node warns (DEP0123) when an IP is used as SNI name; nothing checks the name anyway).
 */
export const PEER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.ssl_target_name_override': 'distri-vault-peer',
  'grpc.default_authority': 'distri-vault-peer',
};

/** Client credentials of one PeerLink and what its latest TLS connection saw. */
export interface PeerClientCredentials {
  credentials: grpc.ChannelCredentials;
  /** Fingerprint of the certificate of the latest TLS connection, or undefined before the first one. */
  peerFingerprint(): Buffer | undefined;
  /**
   * Destroys every connection these credentials made that is still open (connecting or connected); returns
   * how many. grpc-js sees each as dropped: every call open on it ends UNAVAILABLE at once, and the next call
   * dials a new connection. For a link whose path went silent (a black hole that HTTP/2 keepalive would only
   * notice after 40 s).
   */
  dropConnections(): number;
}

interface Destroyable {
  readonly destroyed: boolean;
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
}

interface SecureConnector {
  connect(socket: unknown): Promise<{ socket: unknown; secure: boolean }>;
}

/**
 * Longest a TLS handshake with a peer may take. grpc-js puts no bound on connecting: a connection whose
 * ClientHello was lost (a black-holed path that still accepts TCP) waited for the server's answer until the
 * server's own 120 s TLS timeout, and every call on that link waited with it, long after the path healed.
 * Past this bound the connection is dropped and grpc-js dials again (with its backoff).
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * TLS without certificate verification (the Handshake authenticates), recording the peer's certificate.
 * A TLS handshake that has not finished within `handshakeTimeoutMs` drops its connection (grpc-js redials).
 * The open connections are tracked so `dropConnections` can end them all.
 */
export function peerClientCredentials(handshakeTimeoutMs = TLS_HANDSHAKE_TIMEOUT_MS): PeerClientCredentials {
  const credentials = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false });
  let fingerprint: Buffer | undefined;
  /** Connections still open: each its TCP socket, and its TLS socket once set up. */
  const open = new Set<Destroyable[]>();
  const track = (conn: Destroyable[], sock: unknown) => {
    const s = sock as Destroyable | undefined;
    if (!s || typeof s.destroy !== 'function' || s.destroyed) return;
    conn.push(s);
    open.add(conn);
    s.once('close', () => open.delete(conn));
  };
  const internals = credentials as unknown as { _createSecureConnector?: (...args: unknown[]) => SecureConnector };
  const create = internals._createSecureConnector?.bind(credentials);
  if (!create) throw new Error('grpc-js has no ChannelCredentials._createSecureConnector: the TLS channel binding of the peer Handshake needs updating');
  internals._createSecureConnector = (...args: unknown[]) => {
    const connector = create(...args);
    const connect = connector.connect.bind(connector);
    connector.connect = async (socket) => {
      const conn: Destroyable[] = [];
      track(conn, socket);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          (socket as { destroy?: () => void }).destroy?.();
          reject(new Error(`TLS handshake with the peer did not finish within ${handshakeTimeoutMs} ms`));
        }, handshakeTimeoutMs);
        timer.unref();
      });
      try {
        const result = await Promise.race([connect(socket), timeout]);
        track(conn, result.socket);
        if (result.socket instanceof TLSSocket) {
          const raw = result.socket.getPeerCertificate()?.raw;
          fingerprint = raw ? certFingerprint(raw) : undefined;
        }
        return result;
      } finally {
        clearTimeout(timer);
      }
    };
    return connector;
  };
  const dropConnections = () => {
    const n = open.size;
    for (const conn of [...open]) for (const s of conn) s.destroy();
    open.clear();
    return n;
  };
  return { credentials, peerFingerprint: () => fingerprint, dropConnections };
}
