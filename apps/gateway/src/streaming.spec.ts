import { PassThrough, Writable } from 'node:stream';
import { coalesce, discardBody, pumpUpload, readChunks } from './streaming';
import { seeded } from './testing/fake-node';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function* from(buffers: Buffer[]): AsyncGenerator<Buffer> {
  yield* buffers;
}

describe('coalesce', () => {
  const max = 1000;
  it.each([
    ['nothing', [], []],
    ['one byte', [1], [1]],
    ['max - 1', [999], [999]],
    ['exactly max', [1000], [1000]],
    ['max + 1 in one piece', [1001], [1000, 1]],
    ['many small pieces', Array(25).fill(97), [1000, 1000, 425]],
    ['a piece of 3.5 frames', [3500], [1000, 1000, 1000, 500]],
  ])('%s', async (_name, sizes, frames) => {
    const data = seeded(sizes.reduce((a, b) => a + b, 0), 11);
    const pieces: Buffer[] = [];
    let off = 0;
    for (const n of sizes) {
      pieces.push(data.subarray(off, off + n));
      off += n;
    }
    const out = await collect(coalesce(from(pieces), max));
    expect(out.map((f) => f.length)).toEqual(frames);
    expect(Buffer.concat(out).equals(data)).toBe(true);
    // (All frames are held until here, so a frame buffer reused too early would corrupt this comparison.)
  });
});

describe('readChunks', () => {
  it('reads a stream to its end', async () => {
    const s = new PassThrough();
    const data = seeded(200_000, 4);
    setImmediate(() => s.end(data));
    expect(Buffer.concat(await collect(readChunks(s))).equals(data)).toBe(true);
  });

  it('fails with CancelledError when the stream is destroyed before its end', async () => {
    const s = new PassThrough();
    s.write(Buffer.alloc(10));
    setTimeout(() => s.destroy(new Error('aborted')), 10);
    await expect(collect(readChunks(s))).rejects.toMatchObject({ name: 'CancelledError' });
  });

  it('stops on abort without destroying the stream', async () => {
    const s = new PassThrough();
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 10);
    await expect(collect(readChunks(s, ctrl.signal))).rejects.toMatchObject({ name: 'CancelledError' });
    expect(s.destroyed).toBe(false);
  });
});

describe('discardBody', () => {
  it('reads a body to its end (true), stops past its byte or time bound (false), and leaves a destroyed one alone', async () => {
    const whole = new PassThrough();
    const p1 = discardBody(whole, 1000, 5000);
    whole.write(Buffer.alloc(600));
    whole.end(Buffer.alloc(400));
    expect(await p1).toBe(true);
    const big = new PassThrough();
    const p2 = discardBody(big, 1000, 5000);
    big.write(Buffer.alloc(600));
    big.write(Buffer.alloc(600));
    expect(await p2).toBe(false);
    expect(big.isPaused()).toBe(true);
    const slow = new PassThrough();
    const started = Date.now();
    expect(await discardBody(slow, 1000, 100)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
    const gone = new PassThrough();
    gone.destroy();
    expect(await discardBody(gone)).toBe(false);
  });
});

describe('pumpUpload', () => {
  it('sends the header, then frames, and waits for drain instead of queueing', async () => {
    const frameSize = 64 * 1024;
    const sink = new Writable({
      objectMode: true,
      highWaterMark: 2,
      write(_msg, _enc, cb) {
        setTimeout(cb, 1);
      },
    });
    const messages: string[] = [];
    let peakQueued = 0;
    const origWrite = sink.write.bind(sink);
    sink.write = ((msg: { step: { $case: string } }) => {
      messages.push(msg.step.$case);
      peakQueued = Math.max(peakQueued, sink.writableLength + 1);
      return origWrite(msg);
    }) as typeof sink.write;
    const data = seeded(20 * frameSize + 3, 8);
    const finished = new Promise((r) => sink.once('finish', r));
    const bytes = await pumpUpload(sink as never, { path: 'p', size: data.length }, from([data]), new AbortController().signal, frameSize);
    expect(bytes).toBe(data.length);
    expect(messages[0]).toBe('header');
    expect(messages.slice(1)).toEqual([...Array(21).fill('data'), 'finish']);
    // A pump that ignored write()'s false would queue all 22 messages at once.
    expect(peakQueued).toBeLessThanOrEqual(2);
    await finished;
  });

  it('stops when the signal aborts while waiting for drain', async () => {
    const sink = new Writable({ objectMode: true, highWaterMark: 1, write() { /* never completes */ } });
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 20);
    await expect(pumpUpload(sink as never, { path: 'p' }, from([seeded(5000, 1)]), ctrl.signal, 1000)).rejects.toMatchObject({ name: 'CancelledError' });
  });
});
