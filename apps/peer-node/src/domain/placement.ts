/**
 * Rendezvous (highest-random-weight) placement. Every object of folder F is ranked over the members:
 * the owner F first (it keeps the original), then every other member by descending score, where
 * score = the first 8 bytes of SHA-256(objectId, serverId). Pure and deterministic: every node computes
 * the same ranking from the same member set, and adding or removing one member of n moves only the
 * placements that member wins or held (about 1/n of them).
 */
import { createHash } from 'node:crypto';

/** The HRW weight of `serverId` for `objectId` (a 64-bit unsigned integer). */
export function score(objectId: string, serverId: string): bigint {
  const d = createHash('sha256').update(objectId).update('\0').update(serverId).digest();
  return d.readBigUInt64BE(0);
}

/**
 * Ranks `members` (server IDs; duplicates ignored) for one object of `owner`'s folder: the owner first
 * when it is among them or `includeOwner` holds, then the rest by descending score (ties by ID).
 */
export function rank(objectId: string, owner: string, members: Iterable<string>, includeOwner = true): string[] {
  const others = [...new Set(members)].filter((m) => m !== owner);
  const scored = others.map((m) => ({ m, s: score(objectId, m) }));
  scored.sort((a, b) => (a.s > b.s ? -1 : a.s < b.s ? 1 : a.m < b.m ? -1 : a.m > b.m ? 1 : 0));
  const out = scored.map((x) => x.m);
  return includeOwner ? [owner, ...out] : out;
}

/** The first `count` members of the ranking that `usable` accepts (the owner included when usable). */
export function pick(objectId: string, owner: string, members: Iterable<string>, count: number, usable: (id: string) => boolean = () => true): string[] {
  const out: string[] = [];
  for (const m of rank(objectId, owner, members)) {
    if (out.length >= count) break;
    if (usable(m)) out.push(m);
  }
  return out;
}
