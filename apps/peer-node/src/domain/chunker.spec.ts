import { chunkStream } from './chunker';

async function* frames(total: number, frameSize: number): AsyncGenerator<Buffer> {
  let left = total;
  let n = 0;
  while (left > 0) {
    const len = Math.min(frameSize, left);
    yield Buffer.alloc(len, n++ % 251);
    left -= len;
  }
}

async function cut(total: number, frameSize: number, size: number) {
  const out = [];
  for await (const c of chunkStream(frames(total, frameSize), size)) out.push(c);
  return out;
}

describe('chunkStream', () => {
  const size = 1000;
  it.each([
    [0, 0],
    [1, 1],
    [size - 1, 1],
    [size, 1],
    [size + 1, 2],
    [3 * size, 3],
    [3 * size + 7, 4],
  ])('cuts %i bytes into %i chunks, only the final one marked last', async (total, count) => {
    for (const frameSize of [1, 7, 333, size, 4096]) {
      const chunks = await cut(total, frameSize, size);
      expect(chunks).toHaveLength(count);
      expect(chunks.map((c) => c.index)).toEqual([...Array(count).keys()]);
      expect(chunks.filter((c) => c.last).map((c) => c.index)).toEqual(count ? [count - 1] : []);
      chunks.slice(0, -1).forEach((c) => expect(c.data.length).toBe(size));
      expect(chunks.reduce((s, c) => s + c.data.length, 0)).toBe(total);
    }
  });

  it('keeps the bytes in order across frame boundaries', async () => {
    const src = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) % 256));
    async function* gen() {
      for (let i = 0; i < src.length; i += 777) yield src.subarray(i, i + 777);
    }
    const chunks = [];
    for await (const c of chunkStream(gen(), 1024)) chunks.push(c.data);
    expect(Buffer.concat(chunks).equals(src)).toBe(true);
  });
});
