import pino from 'pino';
import { GraceMembership } from './liveness';
import { rank } from './placement';
import { ReplicationBacklog, TokenBucket } from './replication';
import { Replicator } from './replicator';
import { Vault } from './vault';
import { MemoryCrypto, MemoryPeers, MemoryStorage } from '../testing/memory-ports';
import { seeded, once } from '../testing/bytes';
import { generateKeyPairSync } from 'node:crypto';
import { Garbage, sealGcRecords } from './garbage';
import { serverIdOf } from './identity';

const log = pino({ level: 'silent' });
const R = 3;
const GRACE = 60_000;
const ids = ['n1', 'n2', 'n3', 'n4', 'n5'].map((n) => n.padEnd(32, 'q'));


/** Five in-memory nodes seeing each other, with one shared fake clock. */
function cluster(names = ids, bucket?: () => TokenBucket) {
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => void (now += ms) };
  const stores = new Map(names.map((n) => [n, new MemoryStorage()]));
  const down = new Set<string>();
  const nodes = new Map(
    names.map((self) => {
      const peers = new MemoryPeers([]);
      for (const other of names) if (other !== self) peers.stores.set(other, stores.get(other)!);
      const storage = stores.get(self)!;
      const membership = new GraceMembership(self, () => peers.connected(), GRACE, clock.now);
      const backlog = new ReplicationBacklog({ storage, peers, log }, { window: 4, repairBucket: bucket?.() });
      const replicator = new Replicator({ storage, peers, membership, backlog, garbage: new Garbage({ storage, log }), log }, { serverId: self, replicas: R });
      const vault = new Vault({ storage, peers, crypto: new MemoryCrypto(), log, replication: backlog }, { serverId: self, chunkSize: 4096, replicas: R, window: 3, writeQuorum: 2 });
      return [self, { self, peers, storage, membership, backlog, replicator, vault }] as const;
    }),
  );
  const setDown = (id: string, isDown: boolean) => {
    if (isDown) down.add(id);
    else down.delete(id);
    for (const n of nodes.values()) if (n.self !== id) (isDown ? n.peers.down.add(id) : n.peers.down.delete(id));
  };
  const tick = () => {
    for (const n of nodes.values()) if (!down.has(n.self)) n.membership.tick();
  };
  /** Runs one pass on every live node, one node after another. */
  const repairAll = async () => {
    const reports = new Map<string, Awaited<ReturnType<Replicator['runOnce']>>>();
    for (const n of nodes.values()) if (!down.has(n.self)) reports.set(n.self, await n.replicator.runOnce());
    return reports;
  };
  /** Holders of every object of `folder`: key -> server IDs. */
  const holders = (folder: string) => {
    const out = new Map<string, string[]>();
    for (const [id, s] of stores) {
      for (const kind of ['chunk', 'manifest'] as const) {
        for (const oid of s.ids(folder, kind)) out.set(`${kind}/${oid}`, [...(out.get(`${kind}/${oid}`) ?? []), id]);
      }
    }
    return out;
  };
  return { clock, stores, nodes, down, setDown, tick, repairAll, holders };
}

describe('Replicator', () => {
  it('does nothing when every object is on its R desired holders', async () => {
    const c = cluster();
    c.tick();
    const owner = c.nodes.get(ids[0]!)!;
    await owner.vault.upload('a', undefined, once(seeded(10 * 4096, 1)), new AbortController().signal);
    await owner.backlog.idle();
    const reports = await c.repairAll();
    for (const r of reports.values()) expect(r).toMatchObject({ pushed: 0, deleted: 0, failed: 0, under: 0 });
    for (const [key, hs] of c.holders(ids[0]!)) {
      expect(hs.sort()).toEqual(rank(key.split('/')[1]!, ids[0]!, ids).slice(0, R).sort());
    }
  });

  it('waits for the grace period, then the first live holder restores R copies; the returning node gets extra copies cleaned', async () => {
    const c = cluster();
    c.tick();
    const ownerId = ids[0]!;
    const owner = c.nodes.get(ownerId)!;
    for (let f = 0; f < 4; f++) await owner.vault.upload(`f${f}`, undefined, once(seeded(6 * 4096 + f, f + 1)), new AbortController().signal);
    await owner.backlog.idle();
    const before = c.holders(ownerId);
    // Kill the peer holding the most copies.
    const count = new Map<string, number>();
    for (const hs of before.values()) for (const h of hs) if (h !== ownerId) count.set(h, (count.get(h) ?? 0) + 1);
    const victim = [...count.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    c.setDown(victim, true);

    // Within the grace period: nothing moves.
    c.clock.advance(GRACE / 2);
    c.tick();
    for (const r of (await c.repairAll()).values()) expect(r.pushed + r.deleted).toBe(0);

    // Past it: every object the victim held gets a new copy, pushed by its first live holder.
    c.clock.advance(GRACE);
    c.tick();
    const live = ids.filter((i) => i !== victim);
    const expectedPushers = new Map<string, number>();
    for (const [key, hs] of before) {
      if (!hs.includes(victim)) continue;
      const pusher = rank(key.split('/')[1]!, ownerId, live).find((m) => hs.includes(m))!;
      expectedPushers.set(pusher, (expectedPushers.get(pusher) ?? 0) + 1);
    }
    const reports = await c.repairAll();
    for (const [node, r] of reports) expect(r.pushed).toBe(expectedPushers.get(node) ?? 0);
    expect([...reports.values()].reduce((n, r) => n + r.pushed, 0)).toBe(count.get(victim));
    for (const [key, hs] of c.holders(ownerId)) {
      const onLive = hs.filter((h) => h !== victim);
      expect(onLive.sort()).toEqual(rank(key.split('/')[1]!, ownerId, live).slice(0, R).sort());
    }
    // A second pass finds nothing to do.
    for (const r of (await c.repairAll()).values()) expect(r.pushed + r.deleted + r.under).toBe(0);

    // The victim returns with its old copies: the extra ones are deleted, each object back on exactly R.
    c.setDown(victim, false);
    c.tick();
    const back = await c.repairAll();
    expect([...back.values()].reduce((n, r) => n + r.deleted, 0)).toBe(count.get(victim));
    expect(back.get(ownerId)!.deleted).toBe(0);
    for (const [key, hs] of c.holders(ownerId)) {
      expect(hs.sort()).toEqual(rank(key.split('/')[1]!, ownerId, ids).slice(0, R).sort());
    }
    // The owner's files still read back.
    for (let f = 0; f < 4; f++) {
      const parts: Buffer[] = [];
      for await (const p of owner.vault.read(`f${f}`, undefined, new AbortController().signal)) parts.push(p);
      expect(Buffer.concat(parts).equals(seeded(6 * 4096 + f, f + 1))).toBe(true);
    }
  });

  it('repairs the folder of a gone owner among the others, and never deletes an owner\'s copy in its own folder', async () => {
    const c = cluster();
    c.tick();
    const ownerId = ids[2]!;
    const owner = c.nodes.get(ownerId)!;
    await owner.vault.upload('x', undefined, once(seeded(8 * 4096, 7)), new AbortController().signal);
    await owner.backlog.idle();
    const keys = [...c.holders(ownerId).keys()];
    c.setDown(ownerId, true);
    c.clock.advance(GRACE + 1);
    c.tick();
    await c.repairAll();
    const live = ids.filter((i) => i !== ownerId);
    for (const [key, hs] of c.holders(ownerId)) {
      // The owner still has its copy on its (dead) disk; the live members keep R copies among themselves.
      expect(hs).toContain(ownerId);
      expect(hs.filter((h) => h !== ownerId).sort()).toEqual(rank(key.split('/')[1]!, ownerId, live, false).slice(0, R).sort());
    }
    expect(c.holders(ownerId).size).toBe(keys.length);
    // The owner returns: it is first in every ranking again; the last of the live copies goes away.
    c.setDown(ownerId, false);
    c.tick();
    await c.repairAll();
    for (const [key, hs] of c.holders(ownerId)) expect(hs.sort()).toEqual(rank(key.split('/')[1]!, ownerId, ids).slice(0, R).sort());
  });

  it('rebalances to a member that joins: new placements and existing objects', async () => {
    const all = [...ids, 'n6'.padEnd(32, 'q')];
    const c = cluster(all);
    const newcomer = all[5]!;
    c.setDown(newcomer, true);
    c.tick();
    const ownerId = ids[0]!;
    const owner = c.nodes.get(ownerId)!;
    await owner.vault.upload('old', undefined, once(seeded(30 * 4096, 3)), new AbortController().signal);
    await owner.backlog.idle();
    expect(c.stores.get(newcomer)!.objects.size).toBe(0);
    c.setDown(newcomer, false);
    c.tick();
    const reports = await c.repairAll();
    expect(reports.get(newcomer)).toBeDefined();
    expect(c.stores.get(newcomer)!.objects.size).toBeGreaterThan(0);
    for (const [key, hs] of c.holders(ownerId)) expect(hs.sort()).toEqual(rank(key.split('/')[1]!, ownerId, all).slice(0, R).sort());
    await owner.vault.upload('new', undefined, once(seeded(30 * 4096, 4)), new AbortController().signal);
    await owner.backlog.idle();
    for (const [key, hs] of c.holders(ownerId)) expect(hs.sort()).toEqual(rank(key.split('/')[1]!, ownerId, all).slice(0, R).sort());
  });

  it('counts replication health per folder: objects, below R, sole copies', async () => {
    const c = cluster();
    c.tick();
    const ownerId = ids[0]!;
    const owner = c.nodes.get(ownerId)!;
    await owner.vault.upload('h', undefined, once(seeded(7 * 4096 + 5, 11)), new AbortController().signal);
    await owner.backlog.idle();
    const objects = c.holders(ownerId);
    const chunks = [...objects.keys()].filter((k) => k.startsWith('chunk/')).length;
    expect(chunks).toBe(8);

    // Everything on R holders: the owner's folder is healthy in the owner's report and in every holder's.
    const healthy = await c.repairAll();
    expect(healthy.get(ownerId)!.folderHealth).toEqual([{ folder: ownerId, objects: objects.size, chunks, under: 0, chunksUnder: 0, soleCopy: 0 }]);
    for (const [node, r] of healthy) {
      const held = [...objects.values()].filter((hs) => hs.includes(node)).length;
      const f = r.folderHealth.find((h) => h.folder === ownerId);
      if (node === ownerId || held > 0) expect(f).toMatchObject({ objects: held, under: 0, soleCopy: 0 });
      else expect(f).toBeUndefined();
      // A node always reports its own folder, even when empty.
      expect(r.folderHealth.map((h) => h.folder)).toContain(node);
      expect(r.folderHealth.map((h) => h.folder)).toEqual(r.folderHealth.map((h) => h.folder).sort());
    }

    // One holder unreachable (within the grace period, so nothing is remade yet): the objects it held are
    // below R; none is a sole copy.
    const victim = objects.values().next().value!.find((h) => h !== ownerId)!;
    c.setDown(victim, true);
    const onVictim = [...objects.entries()].filter(([, hs]) => hs.includes(victim));
    let r = await owner.replicator.runOnce();
    expect(r.folderHealth[0]).toEqual({
      folder: ownerId,
      objects: objects.size,
      chunks,
      under: onVictim.length,
      chunksUnder: onVictim.filter(([k]) => k.startsWith('chunk/')).length,
      soleCopy: 0,
    });
    expect(r.under).toBe(onVictim.length);

    // Every peer unreachable: every object is a sole copy and below R.
    for (const id of ids) if (id !== ownerId) c.setDown(id, true);
    r = await owner.replicator.runOnce();
    expect(r.folderHealth).toEqual([{ folder: ownerId, objects: objects.size, chunks, under: objects.size, chunksUnder: chunks, soleCopy: objects.size }]);
  });

  it('rate-limits the repair lane, not the client lane', async () => {
    const storage = new MemoryStorage();
    const peers = new MemoryPeers(['p'.padEnd(32, 'z')]);
    const peer = 'p'.padEnd(32, 'z');
    const backlog = new ReplicationBacklog({ storage, peers, log }, { window: 4, repairBucket: new TokenBucket(400_000, 40_000), clientPriority: 1 });
    const folder = 'f'.padEnd(32, 'y');
    const objs = Array.from({ length: 10 }, (_, i) => seeded(40_000, i + 10));
    const { createHash } = await import('node:crypto');
    const idOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    for (const o of objs) await storage.put(folder, 'chunk', idOf(o), o);
    const t0 = Date.now();
    const repairs = objs.map((o) => backlog.enqueue(peer, { folder, kind: 'chunk', id: idOf(o), size: 0 }, 'repair').done);
    // A client copy queued meanwhile is not held up by the limiter.
    await new Promise((r) => setTimeout(r, 50));
    const c0 = Date.now();
    const client = seeded(40_000, 99);
    await backlog.enqueue(peer, { folder, kind: 'chunk', id: idOf(client), size: client.length, data: client }).done;
    const clientMs = Date.now() - c0;
    await Promise.all(repairs);
    const ms = Date.now() - t0;
    // 400 kB at 400 kB/s with a 40 kB burst: at least ~0.9 s; generous upper bound for a slow machine.
    expect(ms).toBeGreaterThanOrEqual(850);
    expect(ms).toBeLessThan(10_000);
    // Behind the limiter it would wait for most of the repair; it must not.
    expect(clientMs).toBeLessThan(ms / 2);
    expect(backlog.stats()).toMatchObject({ objects: 0, repairSent: 10, repairSentBytes: 400_000, sent: 11 });
    expect(peers.stores.get(peer)!.ids(folder, 'chunk')).toHaveLength(11);
  });

  it('slows the repair lane to 1/clientPriority of its rate while client copies flow', async () => {
    const { createHash } = await import('node:crypto');
    const idOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const peer = 'p'.padEnd(32, 'z');
    const folder = 'f'.padEnd(32, 'y');
    const timeRepairs = async (clientPriority: number, withClients: boolean) => {
      const storage = new MemoryStorage();
      const peers = new MemoryPeers([peer]);
      const backlog = new ReplicationBacklog({ storage, peers, log }, { window: 4, repairBucket: new TokenBucket(1_000_000, 20_000), clientPriority });
      const objs = Array.from({ length: 10 }, (_, i) => seeded(40_000, i + 200));
      for (const o of objs) await storage.put(folder, 'chunk', idOf(o), o);
      let stop = false;
      const clients = (async () => {
        for (let i = 0; withClients && !stop; i++) {
          const b = seeded(1000, 5000 + i);
          await backlog.enqueue(peer, { folder, kind: 'chunk', id: idOf(b), size: b.length, data: b }).done;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await new Promise((r) => setTimeout(r, 10));
      const t0 = Date.now();
      await Promise.all(objs.map((o) => backlog.enqueue(peer, { folder, kind: 'chunk', id: idOf(o), size: 0 }, 'repair').done));
      const ms = Date.now() - t0;
      stop = true;
      await clients;
      return ms;
    };
    // 400 kB at 1 MB/s: ~0.4 s alone; at a quarter of the rate while clients write: ~1.6 s.
    const alone = await timeRepairs(4, false);
    const busy = await timeRepairs(4, true);
    expect(busy).toBeGreaterThanOrEqual(1300); // the limiter cannot be faster than its rate
    expect(alone).toBeLessThan(busy / 2);
    expect(busy).toBeLessThan(15_000);
  });

  it('TokenBucket waits for the debt to be paid at its rate', async () => {
    let t = 0;
    const slept: number[] = [];
    const b = new TokenBucket(
      1000,
      100,
      () => t,
      async (ms) => {
        slept.push(ms);
        t += ms;
      },
    );
    await b.take(100);
    expect(slept).toEqual([]);
    await b.take(500);
    expect(t).toBe(500);
    t += 200;
    await b.take(100); // 200 tokens refilled
    expect(t).toBe(700);
  });

  it('spreads a GC record to every live member (not R), and every member deletes what it names and never gets it back', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = Buffer.from(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
    const signer = { serverId: serverIdOf(raw), publicKey: raw, privateKey };
    const names = [signer.serverId, ...ids.slice(1)];
    const c = cluster(names);
    c.tick();
    const owner = c.nodes.get(signer.serverId)!;
    await owner.vault.upload('a', undefined, once(seeded(6 * 4096, 3)), new AbortController().signal);
    await owner.backlog.idle();
    // Declare two of the file's chunks garbage: a record on the owner's disk only (as if its rotation had just written it).
    const victims = [...c.holders(signer.serverId).keys()].filter((k) => k.startsWith('chunk/')).slice(0, 2).map((k) => k.split('/')[1]!);
    const [record] = sealGcRecords(signer, { chunks: victims, manifests: [] });
    await owner.storage.put(signer.serverId, 'gc', record!.id, record!.data);
    // A stale copy of a victim on a member that is not among its holders.
    const stale = names.find((n) => !c.stores.get(n)!.ids(signer.serverId, 'chunk').includes(victims[0]!))!;
    await c.stores.get(stale)!.put(signer.serverId, 'chunk', victims[0]!, Buffer.from(owner.storage.objects.get(`${signer.serverId}/chunk/${victims[0]}`)!));
    await c.repairAll();
    await c.repairAll();
    for (const n of names) {
      expect([n, c.stores.get(n)!.ids(signer.serverId, 'gc')]).toEqual([n, [record!.id]]);
      for (const v of victims) expect([n, c.stores.get(n)!.ids(signer.serverId, 'chunk').includes(v)]).toEqual([n, false]);
    }
    // The rest of the file stays on exactly R holders; more passes change nothing.
    const reports = await c.repairAll();
    for (const r of reports.values()) expect(r).toMatchObject({ pushed: 0, deleted: 0, failed: 0 });
    for (const [key, hs] of c.holders(signer.serverId)) expect([key, hs.length]).toEqual([key, R]);
  });
});

