#!/usr/bin/env node
/**
 * Creates each node's identity (Ed25519) and vault key (32 random bytes) in the formats the peer-node and
 * crypto-service read, and the network secret all nodes share (<out>/network.secret, once: kept when it
 * exists, so nodes added later join the same network), and prints the kubectl commands that load them
 * into the three Secrets the StatefulSet mounts. Node core only; never overwrites a file; files 0600,
 * directories 0700.
 *
 *   node deploy/make-node-secrets.mjs --out ./vault-secrets --nodes 3 [--namespace distri-vault]
 *
 * <out>/peer-node-<i>/identity.json and <out>/peer-node-<i>/vault-key.json. Keep <out> offline and backed
 * up: a lost vault key means that node's files cannot be decrypted by anyone. The vault key only seeds the
 * pod's key claim (init container seed-vault-key); after the node's first online rotation the file here is a
 * retired key: the recovery key becomes the backup (README.md, "After every rotation or shred").
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    nodes: { type: 'string', default: '3' },
    first: { type: 'string', default: '0' },
    namespace: { type: 'string', default: 'distri-vault' },
  },
});
const nodes = Number(values.nodes);
const first = Number(values.first);
if (!values.out || !Number.isInteger(nodes) || nodes < 1 || !Number.isInteger(first) || first < 0) {
  console.error('usage: make-node-secrets.mjs --out DIR [--nodes N] [--first I] [--namespace NS]');
  process.exit(2);
}
const out = resolve(values.out);

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** RFC 4648 base32, lowercase, no padding (as apps/peer-node/src/domain/identity.ts). */
function base32(bytes) {
  let bits = 0;
  let value = 0;
  let s = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      s += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) s += ALPHABET[(value << (5 - bits)) & 31];
  return s;
}

/** CRC-10/ATM over the first `nbits` bits (as serverIdFromHash in libs/shared/src/ids.ts). */
function crc10(bytes, nbits) {
  let crc = 0;
  for (let i = 0; i < nbits; i++) {
    const bit = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
    const top = (crc >> 9) & 1;
    crc = (crc << 1) & 0x3ff;
    if (top ^ bit) crc ^= 0x233;
  }
  return crc;
}

/** Server ID: 150 bits of SHA-256(public key) and their 10-bit check, base32 (libs/shared/src/ids.ts). */
function serverIdOf(publicKey) {
  const hash = createHash('sha256').update(publicKey).digest();
  const id = Buffer.alloc(20);
  hash.copy(id, 0, 0, 18);
  id[18] = hash[18] & 0xfc;
  const check = crc10(id, 150);
  id[18] |= check >> 8;
  id[19] = check & 0xff;
  return base32(id);
}

function identity() {
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = Buffer.from(der.subarray(der.length - 32));
  const serverId = serverIdOf(publicKey);
  const body = { version: 2, serverId, publicKey: publicKey.toString('base64'), privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }), createdUnixMs: Date.now() };
  return { serverId, text: JSON.stringify(body, null, 2) };
}

function vaultKey() {
  const raw = randomBytes(32);
  const text = JSON.stringify({ version: 1, key: raw.toString('base64'), createdUnixMs: Date.now() }) + '\n';
  raw.fill(0);
  return text;
}

mkdirSync(out, { recursive: true, mode: 0o700 });
const secretPath = join(out, 'network.secret');
if (!existsSync(secretPath)) {
  writeFileSync(secretPath, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  console.log(`network secret: created ${secretPath}`);
} else {
  console.log(`network secret: keeping ${secretPath}`);
}

const pods = [];
for (let i = first; i < first + nodes; i++) {
  const pod = `peer-node-${i}`;
  const dir = join(out, pod);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const idPath = join(dir, 'identity.json');
  const keyPath = join(dir, 'vault-key.json');
  if (existsSync(idPath) || existsSync(keyPath)) {
    console.error(`${dir} already holds an identity or key; not overwriting it`);
    process.exit(1);
  }
  const id = identity();
  writeFileSync(idPath, id.text, { mode: 0o600, flag: 'wx' });
  writeFileSync(keyPath, vaultKey(), { mode: 0o600, flag: 'wx' });
  pods.push(pod);
  console.log(`${pod}: server ID ${id.serverId}`);
}

const all = Array.from({ length: first + nodes }, (_, i) => `peer-node-${i}`);
const from = (file) => all.map((p) => `--from-file=${p}=${join(out, p, file)}`).join(' \\\n    ');
console.log(`
Load them (every node's entries, ${all[0]}..${all[all.length - 1]}):
  kubectl create namespace ${values.namespace} --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n ${values.namespace} create secret generic distri-vault-identities \\
    ${from('identity.json')} \\
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n ${values.namespace} create secret generic distri-vault-vault-keys \\
    ${from('vault-key.json')} \\
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n ${values.namespace} create secret generic distri-vault-network \\
    --from-file=network.secret=${secretPath} \\
    --dry-run=client -o yaml | kubectl apply -f -

Each vault key only seeds its pod's key claim (vault-key-peer-node-<i>) once. After a node's rotation or shred,
export its new recovery key and take its old entry out of distri-vault-vault-keys (README.md).`);
