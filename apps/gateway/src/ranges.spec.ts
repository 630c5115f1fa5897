import { noneMatch, parseRange, RangeNotSatisfiableError, rangeApplies, rangeStartHint, sliceFrames, suffixLength } from './ranges';

describe('parseRange', () => {
  it.each([
    ['bytes=0-0', 10, { start: 0, end: 0 }],
    ['bytes=2-5', 10, { start: 2, end: 5 }],
    ['bytes=2-', 10, { start: 2, end: 9 }],
    ['bytes=5-100', 10, { start: 5, end: 9 }],
    ['bytes=-3', 10, { start: 7, end: 9 }],
    ['bytes=-30', 10, { start: 0, end: 9 }],
    ['BYTES= 1 - 2', 10, { start: 1, end: 2 }],
  ])('%s of %i bytes', (h, size, want) => expect(parseRange(h, size)).toEqual(want));

  it.each([undefined, 'bytes=0-1,3-4', 'items=0-1', 'bytes=5-2', 'bytes=-', 'bytes=a-b', 'bytes=1-2-3'])('ignores %s (whole file)', (h) => {
    expect(parseRange(h, 10)).toBeUndefined();
  });

  it.each([
    ['bytes=10-', 10],
    ['bytes=10-20', 10],
    ['bytes=-0', 10],
    ['bytes=0-', 0],
    ['bytes=-5', 0],
  ])('refuses %s of %i bytes as not satisfiable', (h, size) => {
    expect(() => parseRange(h, size)).toThrow(RangeNotSatisfiableError);
  });
});

describe('start of a range before the size is known', () => {
  it.each([
    ['bytes=10-20', 10, undefined],
    ['bytes=10-', 10, undefined],
    ['bytes=-10', 0, 10],
    ['bytes= - 7', 0, 7],
    ['bytes=20-10', 0, undefined],
    ['bytes=--1', 0, undefined],
    ['bytes=0-1,5-6', 0, undefined],
    [undefined, 0, undefined],
  ])('%s: start hint %d, suffix %s', (h, hint, suffix) => {
    expect([rangeStartHint(h), suffixLength(h)]).toEqual([hint, suffix]);
  });
});

describe('validators', () => {
  const etag = `"${'ab'.repeat(32)}"`;
  it('matches If-None-Match lists, * and weak tags', () => {
    expect(noneMatch(undefined, etag)).toBe(false);
    expect(noneMatch(etag, etag)).toBe(true);
    expect(noneMatch(`"x", W/${etag}`, etag)).toBe(true);
    expect(noneMatch('*', etag)).toBe(true);
    expect(noneMatch('"x"', etag)).toBe(false);
  });
  it('applies a Range only when If-Range is absent or the current ETag', () => {
    expect(rangeApplies(undefined, etag)).toBe(true);
    expect(rangeApplies(etag, etag)).toBe(true);
    expect(rangeApplies('"old"', etag)).toBe(false);
    expect(rangeApplies('Wed, 21 Oct 2015 07:28:00 GMT', etag)).toBe(false);
  });
});

describe('sliceFrames', () => {
  const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
  async function* frames(size: number, seen: number[]): AsyncGenerator<Buffer> {
    for (let off = 0; off < data.length; off += size) {
      seen.push(off);
      yield data.subarray(off, off + size);
    }
  }
  const collect = async (it: AsyncIterable<Buffer>) => {
    const out: Buffer[] = [];
    for await (const b of it) out.push(b);
    return Buffer.concat(out);
  };

  it.each([
    [0, 99, 7],
    [0, 0, 7],
    [6, 7, 7],
    [7, 13, 7],
    [50, 99, 1],
    [99, 99, 100],
  ])('bytes %i-%i from frames of %i', async (start, end, size) => {
    const seen: number[] = [];
    expect((await collect(sliceFrames(frames(size, seen), { start, end }))).equals(data.subarray(start, end + 1))).toBe(true);
    // Reading stops with the frame holding the last byte.
    expect(seen.at(-1)).toBe(Math.floor(end / size) * size);
  });

  it('fails with DataLossError when the source ends early', async () => {
    await expect(collect(sliceFrames(frames(10, []), { start: 90, end: 120 }))).rejects.toMatchObject({ name: 'DataLossError' });
  });
});
