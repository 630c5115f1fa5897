import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base32, hasValidCheck } from '@distri-vault/shared';
import { loadOrCreateIdentity, serverIdOf } from './identity';

describe('identity', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'identity-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('golden vector: the server ID of a fixed Ed25519 public key', () => {
    expect(serverIdOf(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe('mmg42klgyqzwneiskrelxms3j72bfjcw');
  });

  it('is created once (0600, with a checked server ID) and loaded unchanged', async () => {
    const a = await loadOrCreateIdentity(dir);
    expect(a.created).toBe(true);
    expect(hasValidCheck(a.identity.serverId)).toBe(true);
    expect((await stat(join(dir, 'identity.json'))).mode & 0o777).toBe(0o600);
    const b = await loadOrCreateIdentity(dir);
    expect(b.created).toBe(false);
    expect(b.identity.serverId).toBe(a.identity.serverId);
    expect(b.identity.publicKey).toEqual(a.identity.publicKey);
  });

  it('refuses an identity file of the old derivation with a clear message', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    const publicKey = Buffer.from(der.subarray(der.length - 32));
    const oldId = base32(createHash('sha256').update(publicKey).digest().subarray(0, 20));
    await writeFile(
      join(dir, 'identity.json'),
      JSON.stringify({ version: 1, serverId: oldId, publicKey: publicKey.toString('base64'), privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }), createdUnixMs: 1 }),
    );
    await expect(loadOrCreateIdentity(dir)).rejects.toThrow(/written by an older build .*derived without a check/);
    // Nothing was overwritten.
    expect(JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8')).serverId).toBe(oldId);
  });

  it('refuses a file whose server ID does not match its key', async () => {
    await loadOrCreateIdentity(dir);
    const path = join(dir, 'identity.json');
    const body = JSON.parse(await readFile(path, 'utf8'));
    body.serverId = serverIdOf(Buffer.alloc(32, 7));
    await writeFile(path, JSON.stringify(body));
    await expect(loadOrCreateIdentity(dir)).rejects.toThrow(/inconsistent/);
  });
});
