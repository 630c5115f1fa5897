/**
 * MuxStream against a real gRPC server on 127.0.0.1 whose Chunks handler the test steers: answers out
 * of order go to the right callers, item errors fail only their caller, the in-flight bound holds, an
 * aborted caller is released at once and its late answer dropped, and a server that goes away fails the
 * callers waiting on it while the next item, once it is back, opens a new stream.
 */
import { createHash } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { bidi, callMetadata, createClient, messages, startGrpcServer, type RunningServer } from '@distri-vault/shared';
import { CryptoServiceClient, CryptoServiceService, type ChunksRequest, type ChunksResponse, type CryptoServiceServer } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { MuxStream } from './mux-stream';

const log = pino({ level: 'silent' });
const ctx = { folder: 'f'.repeat(32), fileId: Buffer.alloc(16), index: 0, last: true };
const seal = (text: string) => ({ $case: 'seal' as const, value: { wrappedKey: Buffer.alloc(8), context: ctx, plaintext: Buffer.from(text) } });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A Chunks server: "seals" by reversing the bytes; "fail:" items get DATA_LOSS; "hold:" items wait for release(). */
async function fakeServer(port = 0) {
  const received: string[] = [];
  const held: Array<() => void> = [];
  const impl = {
    chunks: bidi<ChunksRequest, ChunksResponse>(log, 'Chunks', async (call: grpc.ServerDuplexStream<ChunksRequest, ChunksResponse>) => {
      for await (const req of messages<ChunksRequest>(call)) {
        if (req.op?.$case !== 'seal') continue;
        const text = req.op.value.plaintext.toString();
        received.push(text);
        const answer = () => {
          const out = Buffer.from(text).reverse();
          call.write(text.startsWith('fail:') ? { seq: req.seq, result: { $case: 'error', value: { code: 15, message: `tampered ${text}` } } } : { seq: req.seq, result: { $case: 'sealed', value: { ciphertext: out, id: sha(out) } } });
        };
        // Held items are answered later, after items sent behind them: out of order.
        if (text.startsWith('hold:')) held.push(answer);
        else answer();
      }
    }),
  } as unknown as CryptoServiceServer;
  const srv: RunningServer = await startGrpcServer({ host: '127.0.0.1', port, log, services: [{ name: 'vault.crypto.v1.CryptoService', definition: CryptoServiceService, implementation: impl }] });
  return { srv, received, release: () => held.splice(0).forEach((f) => f()) };
}

describe('MuxStream', () => {
  let server: Awaited<ReturnType<typeof fakeServer>>;
  let client: CryptoServiceClient;
  type Stream = MuxStream<NonNullable<ChunksRequest['op']>, NonNullable<ChunksResponse['result']>>;
  let stream: Stream;
  const mux = (maxInFlight: number, timeoutMs: number): Stream =>
    new MuxStream({ open: () => client.chunks(callMetadata({ waitForReady: true })), what: 'crypto-service', maxInFlight, timeoutMs });
  const text = async (p: Promise<NonNullable<ChunksResponse['result']>>) => {
    const r = await p;
    return r.$case === 'sealed' ? Buffer.from(r.value.ciphertext).reverse().toString() : r.$case;
  };

  beforeEach(async () => {
    server = await fakeServer();
    client = createClient(CryptoServiceClient, `127.0.0.1:${server.srv.port}`);
    stream = mux(8, 5000);
  });
  afterEach(async () => {
    stream.close();
    client.close();
    await server.srv.close(100);
  });

  it('answers each of many concurrent callers with its own result, also when answers come out of order', async () => {
    const names = Array.from({ length: 60 }, (_, i) => (i % 7 === 0 ? `hold:${i}` : `item:${i}`));
    const results = names.map((n) => text(stream.run(seal(n))));
    // Release the held ones once everything else was sent.
    const releaser = setInterval(() => server.release(), 20);
    try {
      expect(await Promise.all(results)).toEqual(names);
    } finally {
      clearInterval(releaser);
    }
    expect(stream.outstanding).toBe(0);
  });

  it('fails only the caller whose item failed, with the mapped domain error', async () => {
    const [a, b, c] = [text(stream.run(seal('ok:1'))), stream.run(seal('fail:2')), text(stream.run(seal('ok:3')))];
    await expect(b).rejects.toMatchObject({ name: 'DataLossError', message: expect.stringContaining('tampered fail:2') });
    expect([await a, await c]).toEqual(['ok:1', 'ok:3']);
  });

  it(`keeps at most maxInFlight items outstanding; the rest wait for a slot`, async () => {
    const results = Array.from({ length: 11 }, (_, i) => text(stream.run(seal(`hold:${i}`))));
    await new Promise((r) => setTimeout(r, 300));
    expect(server.received).toHaveLength(8);
    expect(stream.outstanding).toBe(8);
    const releaser = setInterval(() => server.release(), 20);
    try {
      expect(await Promise.all(results)).toEqual(Array.from({ length: 11 }, (_, i) => `hold:${i}`));
    } finally {
      clearInterval(releaser);
    }
  });

  it('releases an aborted caller at once (also one waiting for a slot) and drops its late answer', async () => {
    const ctrl = new AbortController();
    const waiting = new AbortController();
    const first = Array.from({ length: 8 }, (_, i) => stream.run(seal(`hold:${i}`), i === 0 ? ctrl.signal : undefined));
    const queued = stream.run(seal('item:queued'), waiting.signal);
    await new Promise((r) => setTimeout(r, 200));
    ctrl.abort();
    waiting.abort();
    await expect(first[0]).rejects.toMatchObject({ name: 'CancelledError' });
    await expect(queued).rejects.toMatchObject({ name: 'CancelledError' });
    server.release(); // answers the aborted one too: dropped
    await Promise.all(first.slice(1));
    expect(stream.outstanding).toBe(0);
    expect(server.received).not.toContain('item:queued');
    expect(await text(stream.run(seal('item:after')))).toBe('item:after');
  });

  it('fails the callers of a stream whose server went away (UNAVAILABLE); the next item, once it is back, opens a new stream', async () => {
    const port = server.srv.port;
    expect(await text(stream.run(seal('item:before')))).toBe('item:before');
    const stuck = stream.run(seal('hold:stuck'));
    await new Promise((r) => setTimeout(r, 100));
    await server.srv.close(0);
    await expect(stuck).rejects.toMatchObject({ name: expect.stringMatching(/UnavailableError|CancelledError/) });
    server = await fakeServer(port);
    expect(await text(stream.run(seal('item:after')))).toBe('item:after');
    expect(server.received).toEqual(['item:after']);
  });

  it('drops a call that answers nothing (the service is down) when an item times out: what its callers gave up on is never sent once the service is up', async () => {
    const port = server.srv.port;
    await server.srv.close(0);
    const down = mux(4, 150);
    try {
      const stale = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => down.run(seal(`item:stale-${i}`))));
      expect(stale.map((r) => r.status === 'rejected' && (r.reason as Error).name)).toEqual(Array(6).fill('DeadlineExceededError'));
      expect(down.outstanding).toBe(0);
      server = await fakeServer(port);
      // The channel reconnects within its backoff; until then items may time out too.
      let answer: string | undefined;
      for (let i = 0; i < 60 && answer === undefined; i++) answer = await text(down.run(seal('item:after'))).catch(() => undefined);
      expect(answer).toBe('item:after');
      expect(server.received.filter((r) => r.startsWith('item:stale'))).toEqual([]);
    } finally {
      down.close();
    }
  }, 20_000);

  it('fails a caller whose item is not answered within timeoutMs', async () => {
    const quick = mux(2, 200);
    try {
      await expect(quick.run(seal('hold:slow'))).rejects.toMatchObject({ name: 'DeadlineExceededError' });
      expect(quick.outstanding).toBe(0);
    } finally {
      quick.close();
    }
  });
});
