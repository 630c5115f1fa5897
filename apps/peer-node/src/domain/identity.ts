/**
 * A node's identity: an Ed25519 key pair created on first start and kept in the identity directory.
 * The server ID is derived from the public key (150 bits of SHA-256 plus a 10-bit check, base32: see
 * `serverIdFromHash` in libs/shared/src/ids.ts), so it is stable across restarts and disk loss as long as
 * the identity file is kept, and a mistyped server ID is caught.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { base32, hasValidCheck, serverIdFromHash } from '@distri-vault/shared';

export { base32 };

/** The node's identity. */
export interface Identity {
  /** Folder name and network identity of this node. */
  serverId: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
  /** The private key; never leaves this process. */
  privateKey: KeyObject;
}

const FILE = 'identity.json';
/**
 * identity.json format. Version 1 files carry a server ID of the first derivation (160 bits of SHA-256,
 * no check) and are refused with an explanation; version 2 is the derivation with a check.
 */
const FORMAT = 2;

/** The server ID of a raw Ed25519 public key: 150 bits of its SHA-256 and a 10-bit check, base32. */
export function serverIdOf(publicKey: Uint8Array): string {
  return serverIdFromHash(createHash('sha256').update(publicKey).digest());
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** Loads the identity from `dir`, creating it (atomically, mode 0600) on first start. */
export async function loadOrCreateIdentity(dir: string): Promise<{ identity: Identity; created: boolean }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    let parsed: { version?: number; privateKey?: string; serverId?: string };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`identity file ${path} is not valid JSON; restore it from your backup`);
    }
    if (parsed.version === 1) {
      throw new Error(
        `identity file ${path} was written by an older build (server ID ${String(parsed.serverId)}, derived without a check). ` +
          'Server IDs now carry a check and are derived differently, so this identity would get a new server ID and folder. ' +
          'Move the identity directory (and the node\'s data) aside and start again to create a new identity, or keep running the older build.',
      );
    }
    if (parsed.version !== FORMAT || typeof parsed.privateKey !== 'string') throw new Error(`identity file ${path} has an unknown format (version ${String(parsed.version)})`);
    const privateKey = createPrivateKey(parsed.privateKey);
    const publicKey = rawPublicKey(privateKey);
    const serverId = serverIdOf(publicKey);
    if (parsed.serverId !== serverId || !hasValidCheck(serverId)) throw new Error(`identity file ${path} is inconsistent (server ID does not match its key)`);
    return { identity: { serverId, publicKey, privateKey }, created: false };
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const publicKey = rawPublicKey(privateKey);
  const serverId = serverIdOf(publicKey);
  const body = JSON.stringify(
    { version: FORMAT, serverId, publicKey: publicKey.toString('base64'), privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }), createdUnixMs: Date.now() },
    null,
    2,
  );
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  return { identity: { serverId, publicKey, privateKey }, created: true };
}
