import { createHash } from 'node:crypto';
import { pick, rank, score } from './placement';

const id = (i: number) => createHash('sha256').update(`object-${i}`).digest('hex');
const member = (i: number) => `node${i}`.padEnd(32, 'x');
const OWNER = 'o'.repeat(32);

describe('HRW placement', () => {
  it('is deterministic and independent of the order members are given in', () => {
    const members = [1, 2, 3, 4, 5].map(member);
    for (let i = 0; i < 50; i++) {
      const a = rank(id(i), OWNER, [OWNER, ...members]);
      const b = rank(id(i), OWNER, [...members].reverse().concat(OWNER, members[0]!));
      expect(a).toEqual(b);
      expect(a[0]).toBe(OWNER);
      expect(new Set(a).size).toBe(6);
    }
    expect(score(id(1), member(1))).toBe(score(id(1), member(1)));
    expect(score(id(1), member(1))).not.toBe(score(id(1), member(2)));
  });

  it('puts the owner first even when not listed, and spreads the rest evenly', () => {
    const members = [1, 2, 3, 4, 5].map(member);
    const firsts = new Map<string, number>();
    const N = 5000;
    for (let i = 0; i < N; i++) {
      const r = rank(id(i), OWNER, members);
      expect(r[0]).toBe(OWNER);
      firsts.set(r[1]!, (firsts.get(r[1]!) ?? 0) + 1);
    }
    for (const m of members) expect(firsts.get(m)! / N).toBeGreaterThan(0.15); // 0.2 each, ±5 %
    for (const m of members) expect(firsts.get(m)! / N).toBeLessThan(0.25);
  });

  it('moves about 1/n of the placements when one member of n joins or leaves', () => {
    const R = 3;
    const N = 4000;
    for (const n of [5, 10]) {
      const before = Array.from({ length: n }, (_, i) => member(i));
      const joined = [...before, member(n)];
      const left = before.slice(1);
      let movedJoin = 0;
      let movedLeave = 0;
      for (let i = 0; i < N; i++) {
        const a = pick(id(i), OWNER, before, R);
        const j = pick(id(i), OWNER, joined, R);
        const l = pick(id(i), OWNER, left, R);
        // A join moves a placement only to the newcomer; a leave moves only what the leaver held.
        movedJoin += j.filter((m) => !a.includes(m)).length;
        movedLeave += l.filter((m) => !a.includes(m)).length;
        for (const m of j.filter((x) => !a.includes(x))) expect(m).toBe(member(n));
        if (l.some((m) => !a.includes(m))) expect(a).toContain(member(0));
      }
      // R-1 peer copies per object; the expected share that moves is (R-1)/n of a peer slot each.
      const slots = N * (R - 1);
      expect(movedJoin / slots).toBeGreaterThan(0.5 / (n + 1));
      expect(movedJoin / slots).toBeLessThan(1.5 / (n + 1));
      expect(movedLeave / slots).toBeGreaterThan(0.5 / n);
      expect(movedLeave / slots).toBeLessThan(1.5 / n);
    }
  });

  it('pick skips members that are not usable and keeps ranking order', () => {
    const members = [1, 2, 3, 4].map(member);
    const full = rank(id(7), OWNER, members);
    const gone = full[1]!;
    expect(pick(id(7), OWNER, members, 3, (m) => m !== gone)).toEqual(full.filter((m) => m !== gone).slice(0, 3));
    expect(pick(id(7), OWNER, members, 2, (m) => m !== OWNER)).toEqual(full.slice(1, 3));
  });
});
