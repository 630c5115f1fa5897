import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNetworkSecret } from './network-secret';

describe('network secret file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'secret-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('reads 32+ bytes of hex (one line) and reports a world-readable file', async () => {
    const f = join(dir, 'ok');
    await writeFile(f, 'ab'.repeat(32) + '\n', { mode: 0o600 });
    expect(await loadNetworkSecret(f)).toEqual({ secret: Buffer.alloc(32, 0xab), worldReadable: false });
    await chmod(f, 0o644);
    expect((await loadNetworkSecret(f)).worldReadable).toBe(true);
  });

  it('refuses a missing file, saying how to get one', async () => {
    await expect(loadNetworkSecret(join(dir, 'absent'))).rejects.toThrow(/network secret .*absent is not readable \(ENOENT\).*NODE_NETWORK_SECRET_FILE/);
  });

  it.each([
    ['empty', ''],
    ['too short', 'ab'.repeat(16)],
    ['not hex', 'zz'.repeat(32)],
    ['odd length', 'a'.repeat(65)],
  ])('refuses a malformed secret: %s', async (_name, body) => {
    const f = join(dir, 'bad');
    await writeFile(f, body);
    await expect(loadNetworkSecret(f)).rejects.toThrow(/is malformed: want at least 32 random bytes as hex/);
  });
});
