import { CancelledError } from '@distri-vault/shared';
import { ByteBudget } from './budget';

const tick = () => new Promise((r) => setImmediate(r));

describe('ByteBudget', () => {
  it('grants within the limit, queues beyond it in arrival order, and gives back once per grant', async () => {
    const b = new ByteBudget(10);
    const g1 = await b.take(6);
    const order: string[] = [];
    const p2 = b.take(6).then((g) => (order.push('second'), g));
    const p3 = b.take(1).then((g) => (order.push('third'), g)); // fits, but waits its turn behind the second
    await tick();
    expect([b.inUse, b.waiting, order]).toEqual([6, 2, []]);
    expect(b.tryTake(1)).toBeUndefined(); // nobody jumps the line
    g1();
    g1(); // a second give-back changes nothing
    const g2 = await p2;
    const g3 = await p3;
    expect([b.inUse, order]).toEqual([7, ['second', 'third']]);
    g2();
    g3();
    expect(b.inUse).toBe(0);
  });

  it('clamps a request larger than the budget to the whole budget, so it runs alone rather than never', async () => {
    const b = new ByteBudget(10);
    const g = await b.take(25);
    expect(b.inUse).toBe(10);
    const small = b.take(1);
    await tick();
    expect(b.waiting).toBe(1);
    g();
    (await small)();
    expect(b.inUse).toBe(0);
  });

  it('a cancelled waiter takes nothing and lets the ones behind it go', async () => {
    const b = new ByteBudget(10);
    const g = await b.take(8);
    const ctrl = new AbortController();
    const big = b.take(9, ctrl.signal);
    const small = b.take(2);
    await tick();
    ctrl.abort();
    await expect(big).rejects.toBeInstanceOf(CancelledError);
    (await small)(); // 8 + 2 fits once the big one left the line
    g();
    expect([b.inUse, b.waiting]).toEqual([0, 0]);
  });

  it('tryTake takes only what fits now; a limit of 0 never waits', async () => {
    const b = new ByteBudget(4);
    const g = b.tryTake(3)!;
    expect(b.tryTake(2)).toBeUndefined();
    g();
    expect(b.tryTake(4)).toBeDefined();
    const none = new ByteBudget(0);
    await none.take(1e12);
    expect(none.tryTake(1e12)).toBeDefined();
  });
});
