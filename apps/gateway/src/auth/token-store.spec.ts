import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenStore } from './token-store';

describe('TokenStore', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tokens-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates one read-write token on first start only, and keeps tokens across reopen', async () => {
    const first = await TokenStore.open(dir);
    expect(first.created).toBeDefined();
    const admin = first.created!.token;
    expect(readFileSync(join(dir, 'token'), 'utf8')).toBe(`${admin}\n`);
    expect(first.store.verify(admin)).toMatchObject({ scope: 'write' });
    const ro = await first.store.create('reader', 'read');

    const again = await TokenStore.open(dir);
    expect(again.created).toBeUndefined();
    expect(again.store.verify(admin)).toMatchObject({ scope: 'write' });
    expect(again.store.verify(ro.token)).toEqual({ id: ro.id, scope: 'read' });
    expect(again.store.list().map((t) => t.name)).toEqual(['admin', 'reader']);
    expect(statSync(join(dir, 'tokens.json')).mode & 0o777).toBe(0o600);
    // Only hashes on disk. (The secret part is base64url, which may itself contain '_'.)
    expect(readFileSync(join(dir, 'tokens.json'), 'utf8')).not.toContain(ro.token.split('_').slice(2).join('_'));
  });

  it('rejects revoked, altered and malformed tokens', async () => {
    const { store, created } = await TokenStore.open(dir);
    const t = await store.create('x', 'write');
    const flipped = t.token.slice(0, -1) + (t.token.endsWith('A') ? 'B' : 'A');
    expect(store.verify(flipped)).toBeUndefined();
    expect(store.verify('')).toBeUndefined();
    expect(store.verify(`${t.token} `)).toBeUndefined();
    await store.revoke(t.id);
    expect(store.verify(t.token)).toBeUndefined();
    expect((await TokenStore.open(dir)).store.verify(t.token)).toBeUndefined();
    expect(store.verify(created!.token)).toBeDefined();
    await expect(store.revoke(t.id)).rejects.toMatchObject({ name: 'NotFoundError' });
    await expect(store.create('y', 'admin' as never)).rejects.toMatchObject({ name: 'InvalidArgumentError' });
  });
});
