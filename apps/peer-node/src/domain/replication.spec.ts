/**
 * The replication backlog's memory rule: a released copy keeps its bytes only when small and within the
 * retain budget; everything else is re-read from the local store when its turn comes.
 */
import { createHash, randomBytes } from 'node:crypto';
import pino from 'pino';
import { MemoryPeers, MemoryStorage } from '../testing/memory-ports';
import { RETAIN_MAX_OBJECT_BYTES, ReplicationBacklog } from './replication';

const log = pino({ level: 'silent' });
const OWNER = 'o'.repeat(32);
const PEER = 'p'.repeat(32);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('replication backlog: bytes of released copies', () => {
  async function run(sizes: number[], retainBytes?: number) {
    const storage = new MemoryStorage();
    const peers = new MemoryPeers([PEER]);
    let gets = 0;
    const get = storage.get.bind(storage);
    storage.get = async (...args) => {
      gets++;
      return get(...args);
    };
    const backlog = new ReplicationBacklog({ storage, peers, log }, { window: 1, retainBytes });
    const open = peers.hold(PEER); // the peer stores nothing until released: every copy stays queued
    const objs = sizes.map((n) => randomBytes(n));
    for (const d of objs) await storage.put(OWNER, 'chunk', sha(d), d);
    const handles = objs.map((d) => backlog.enqueue(PEER, { folder: OWNER, kind: 'chunk', id: sha(d), size: d.length, data: d }));
    for (const h of handles) h.release(); // each upload reached its quorum without this copy
    open();
    await Promise.all(handles.map((h) => h.done));
    expect(peers.stores.get(PEER)!.ids(OWNER, 'chunk').sort()).toEqual(objs.map(sha).sort());
    expect(backlog.retainedBytes).toBe(0); // the budget is given back as copies are sent
    return { gets, rereads: backlog.rereads };
  }

  it('keeps small objects within the budget and re-reads large ones from the store', async () => {
    // The first object is in flight (window 1) before release; of the rest, the small ones are kept.
    const r = await run([4096, 4096, 4096, RETAIN_MAX_OBJECT_BYTES + 1, 4096, 2 * RETAIN_MAX_OBJECT_BYTES]);
    expect(r).toEqual({ gets: 2, rereads: 2 });
  });

  it('re-reads small objects too once the budget is spent, and keeps none with a budget of 0', async () => {
    expect(await run([4096, 4096, 4096, 4096, 4096], 8192)).toEqual({ gets: 2, rereads: 2 });
    expect(await run([4096, 4096, 4096], 0)).toEqual({ gets: 2, rereads: 2 });
  });
});
