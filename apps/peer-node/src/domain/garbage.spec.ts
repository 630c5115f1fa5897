/**
 * GC records and tombstones: only the folder owner's signed record is accepted; applying it deletes the
 * listed objects and tombstones them; a restarted node rebuilds its tombstones from the records it holds.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { Garbage, MAX_GC_RECORD_IDS, openGcRecord, sealGcRecords } from './garbage';
import { serverIdOf } from './identity';
import { MemoryStorage } from '../testing/memory-ports';

function identity() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
  return { serverId: serverIdOf(raw), publicKey: raw, privateKey };
}
const id = (s: string) => createHash('sha256').update(s).digest('hex');
const log = pino({ level: 'silent' });

describe('GC records', () => {
  const owner = identity();
  const other = identity();
  const garbage = { chunks: [id('c1'), id('c2')], manifests: [id('m1')] };

  it('round-trip: the owner\'s record opens for its folder, content-addressed, IDs sorted and deduplicated', () => {
    const [rec] = sealGcRecords(owner, { chunks: [...garbage.chunks, garbage.chunks[0]!], manifests: garbage.manifests }, 1234);
    expect(rec!.kind).toBe('gc');
    expect(rec!.id).toBe(createHash('sha256').update(rec!.data).digest('hex'));
    expect(openGcRecord(owner.serverId, rec!.data)).toEqual({ folder: owner.serverId, createdUnixMs: 1234, chunks: [...garbage.chunks].sort(), manifests: garbage.manifests });
  });

  it('refuse, changing nothing, a record of another folder, another key, a forged signature or a tampered list', () => {
    const [rec] = sealGcRecords(owner, garbage);
    const data = rec!.data;
    // Offered for another folder.
    expect(() => openGcRecord(other.serverId, data)).toThrow(expect.objectContaining({ name: 'PermissionDeniedError' }));
    // Another node signs a record claiming the owner's folder: its key does not hash to the folder.
    const text = data.toString('utf8');
    const forged = sealGcRecords(other, garbage)[0]!.data.toString('utf8').replace(other.serverId, owner.serverId);
    expect(() => openGcRecord(owner.serverId, Buffer.from(forged))).toThrow(expect.objectContaining({ name: 'PermissionDeniedError' }));
    // The owner's key, another node's signature.
    const json = JSON.parse(text.slice(text.indexOf('\n') + 1));
    const sigOfOther = JSON.parse(sealGcRecords(other, garbage)[0]!.data.toString('utf8').split('\n')[1]!).signature;
    const swapped = text.replace(json.signature, sigOfOther);
    expect(() => openGcRecord(owner.serverId, Buffer.from(swapped))).toThrow(expect.objectContaining({ name: 'PermissionDeniedError' }));
    // One more ID slipped into the signed list.
    const added = text.replace(`"chunks":["`, `"chunks":["${id('victim')}","`);
    expect(() => openGcRecord(owner.serverId, Buffer.from(added))).toThrow(expect.objectContaining({ name: 'PermissionDeniedError' }));
    // Not a record at all, or a malformed one.
    for (const bad of ['hello', 'distri-vault gc record v1\n{', 'distri-vault gc record v1\n{"folder":1}', text.replace(garbage.chunks[0]!, '../../etc/passwd')]) {
      expect(() => openGcRecord(owner.serverId, Buffer.from(bad))).toThrow(expect.objectContaining({ name: 'InvalidArgumentError' }));
    }
  });

  it(`split a large garbage list into records of at most ${MAX_GC_RECORD_IDS} IDs`, () => {
    const many = Array.from({ length: MAX_GC_RECORD_IDS + 5 }, (_, i) => id(`c${i}`));
    const recs = sealGcRecords(owner, { chunks: many, manifests: [id('m')] });
    expect(recs).toHaveLength(2);
    const opened = recs.map((r) => openGcRecord(owner.serverId, r.data));
    expect(opened.flatMap((r) => r.chunks).sort()).toEqual([...many].sort());
    expect(opened.flatMap((r) => r.manifests)).toEqual([id('m')]);
    for (const r of recs) expect(r.data.length).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('Garbage (tombstones)', () => {
  const owner = identity();

  it('apply deletes the listed objects of that folder only, tombstones them, and a restarted node rebuilds the tombstones from the records it holds', async () => {
    const storage = new MemoryStorage();
    const g = new Garbage({ storage, log });
    const peer = identity().serverId;
    for (const [folder, kind, name] of [[owner.serverId, 'chunk', 'c1'], [owner.serverId, 'manifest', 'm1'], [owner.serverId, 'chunk', 'keep'], [peer, 'chunk', 'c1']] as const) {
      await storage.put(folder, kind, id(name), Buffer.from(name));
    }
    const [rec] = sealGcRecords(owner, { chunks: [id('c1'), id('never-held')], manifests: [id('m1')] });
    await storage.put(owner.serverId, 'gc', rec!.id, rec!.data);
    expect(await g.apply(owner.serverId, rec!)).toBe(2);
    expect(storage.ids(owner.serverId, 'chunk')).toEqual([id('keep')]);
    expect(storage.ids(owner.serverId, 'manifest')).toEqual([]);
    expect(storage.ids(peer, 'chunk')).toEqual([id('c1')]); // another folder's object with the same ID: untouched
    expect(g.isDead(owner.serverId, id('c1'))).toBe(true);
    expect(g.isDead(owner.serverId, id('never-held'))).toBe(true);
    expect(g.isDead(peer, id('c1'))).toBe(false);
    expect(g.live(owner.serverId, [id('c1'), id('keep')])).toEqual([id('keep')]);
    expect(g.stats()).toEqual({ records: 1, tombstones: 3, deleted: 2 });

    // The same record again (another peer pushes it too), also concurrently: applied once.
    expect(await Promise.all([g.apply(owner.serverId, rec!), g.apply(owner.serverId, rec!)])).toEqual([0, 0]);
    expect(g.stats()).toEqual({ records: 1, tombstones: 3, deleted: 2 });
    const fresh = new Garbage({ storage, log });
    await storage.put(owner.serverId, 'manifest', id('m1'), Buffer.from('m1')); // came back
    expect(await Promise.all([fresh.apply(owner.serverId, rec!), fresh.apply(owner.serverId, rec!)])).toEqual([1, 0]);
    expect(fresh.stats()).toEqual({ records: 1, tombstones: 3, deleted: 1 });

    const restarted = new Garbage({ storage, log });
    expect(restarted.isDead(owner.serverId, id('m1'))).toBe(false);
    await restarted.load(owner.serverId);
    expect(restarted.isDead(owner.serverId, id('m1'))).toBe(true);
    expect(restarted.stats()).toMatchObject({ records: 1, tombstones: 3 });
  });

  it('apply refuses a record that is not the folder owner\'s and deletes nothing', async () => {
    const storage = new MemoryStorage();
    const g = new Garbage({ storage, log });
    const intruder = identity();
    await storage.put(owner.serverId, 'chunk', id('c1'), Buffer.from('c1'));
    const [rec] = sealGcRecords(intruder, { chunks: [id('c1')], manifests: [] });
    await expect(g.apply(owner.serverId, rec!)).rejects.toMatchObject({ name: 'PermissionDeniedError' });
    expect(storage.ids(owner.serverId, 'chunk')).toEqual([id('c1')]);
    expect(g.isDead(owner.serverId, id('c1'))).toBe(false);
  });
});
