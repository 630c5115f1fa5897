import pino from 'pino';
import { Vault } from './vault';
import { MemoryCrypto, MemoryPeers, MemoryStorage } from '../testing/memory-ports';

const OWNER = 'a'.repeat(32);
const signal = () => new AbortController().signal;

async function* one(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}
async function text(it: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts).toString();
}

function setup() {
  const storage = new MemoryStorage();
  const crypto = new MemoryCrypto();
  const peers = new MemoryPeers(['p1'.padEnd(32, 'b'), 'p2'.padEnd(32, 'c')]);
  const make = () => new Vault({ storage, crypto, peers, log: pino({ level: 'silent' }) }, { serverId: OWNER, chunkSize: 4096, replicas: 3, window: 3 });
  return { storage, peers, vault: make(), make };
}

describe('Vault reads from an offset', () => {
  it.each([0, 1, 4095, 4096, 4097, 3 * 4096 + 5, 3 * 4096 + 10, 10_000_000])('from byte %i, reading only the chunks it needs', async (offset) => {
    const { storage, vault } = setup();
    const body = Buffer.from(Array.from({ length: 3 * 4096 + 10 }, (_, i) => (i * 7) & 0xff));
    await vault.upload('o.bin', undefined, one(body), signal());
    const reads: string[] = [];
    const get = storage.get.bind(storage);
    storage.get = (folder: string, kind: 'chunk' | 'manifest', id: string) => {
      if (kind === 'chunk') reads.push(id);
      return get(folder, kind, id);
    };
    const parts: Buffer[] = [];
    for await (const p of vault.read('o.bin', undefined, signal(), offset)) parts.push(p);
    expect(Buffer.concat(parts).equals(body.subarray(offset))).toBe(true);
    // Only chunks that end after the offset (chunk ends: 4096, 8192, 12288, 12298).
    expect(reads).toHaveLength([4096, 8192, 12288, 12298].filter((end) => end > offset).length);
  });
});

describe('Vault versions', () => {
  it('lists versions with deletions, restores an old one as the newest without new chunks, and survives an index reload', async () => {
    const { storage, vault, make } = setup();
    await vault.upload('f.txt', undefined, one(Buffer.from('one '.repeat(3000))), signal());
    await vault.upload('f.txt', undefined, one(Buffer.from('two')), signal());
    await vault.delete('f.txt', signal());
    expect(vault.versions('f.txt').map((v) => [v.version, v.deleted ?? false])).toEqual([[1, false], [2, false], [3, true]]);
    const chunks = storage.ids(OWNER, 'chunk').length;

    const restored = await vault.restore('f.txt', 1, signal());
    expect(restored).toMatchObject({ version: 4, size: 12000 });
    expect(storage.ids(OWNER, 'chunk')).toHaveLength(chunks);
    expect(await text(vault.read('f.txt', undefined, signal()))).toBe('one '.repeat(3000));
    expect(vault.list().map((f) => f.version)).toEqual([4]);

    const fresh = make();
    await fresh.loadIndex();
    expect(fresh.versions('f.txt').map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect(await text(fresh.read('f.txt', 4, signal()))).toBe('one '.repeat(3000));
    await expect(vault.restore('f.txt', 3, signal())).rejects.toMatchObject({ name: 'NotFoundError' });
    await expect(vault.restore('f.txt', 9, signal())).rejects.toMatchObject({ name: 'NotFoundError' });
  });

  it('deletes one version (the previous one becomes current) or all, on the owner and its peers', async () => {
    const { vault, make, peers } = setup();
    await vault.upload('g.txt', undefined, one(Buffer.from('v1')), signal());
    await vault.upload('g.txt', undefined, one(Buffer.from('v2')), signal());
    await vault.upload('h.txt', undefined, one(Buffer.from('h')), signal());
    expect(await vault.deleteVersion('g.txt', 2, signal())).toBe(1);
    expect(vault.versions('g.txt').map((v) => v.version)).toEqual([1]);
    expect(await text(vault.read('g.txt', undefined, signal()))).toBe('v1');
    expect(() => vault.stat('g.txt', 2)).toThrow(expect.objectContaining({ name: 'NotFoundError' }));
    await expect(vault.deleteVersion('g.txt', 2, signal())).rejects.toMatchObject({ name: 'NotFoundError' });
    // The next upload does not reuse a number.
    expect((await vault.upload('g.txt', undefined, one(Buffer.from('v3')), signal())).version).toBe(4);
    expect(await vault.deleteVersion('g.txt', 'all', signal())).toBe(2);
    expect(vault.list().map((f) => f.path)).toEqual(['h.txt']);
    expect(() => vault.versions('g.txt')).toThrow(expect.objectContaining({ name: 'NotFoundError' }));
    // History records are replicated like every manifest: g has 3 versions and 2 records, h 1 version.
    await vault.replication.idle();
    for (const s of peers.stores.values()) expect(s.ids(OWNER, 'manifest')).toHaveLength(6);
    const fresh = make();
    await fresh.loadIndex();
    expect(fresh.list().map((f) => f.path)).toEqual(['h.txt']);
    expect((await fresh.upload('g.txt', undefined, one(Buffer.from('v6')), signal())).version).toBe(6);
  });
});
