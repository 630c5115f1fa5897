/**
 * A broken-off upload must never reach the node as a complete one. grpc-js cancels a call through Node's
 * http2 `close()`, which half-closes the stream before it sends RST_STREAM, so the node may see a plain end
 * of the body (found by the fuzz system test, test/system/fuzz-grpc.spec.ts: the server saw just the header,
 * then the end, and stored an empty file). Hence the explicit `finish` step: the node stores only when it
 * arrives. This test records, on a real gRPC server that commits like the node, the frames a broken-off
 * upload and a whole one deliver.
 */
import pino from 'pino';
import { clientStream, startGrpcServer, InvalidArgumentError, type RunningServer } from '@distri-vault/shared';
import { NodeServiceService, type UploadFileRequest } from '@distri-vault/shared/generated/vault/node/v1/node';
import { NodeClient } from './node-client';

describe('NodeClient.upload broken off by its body', () => {
  let srv: RunningServer;
  /** Steps received per call ('header', 'data:<n>', 'end' for a half-close), and how the call ended. */
  const calls: { steps: string[]; committed: boolean }[] = [];

  beforeAll(async () => {
    const log = pino({ level: 'silent' });
    srv = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      services: [
        {
          name: 'vault.node.v1.NodeService',
          definition: NodeServiceService,
          implementation: {
            uploadFile: clientStream(log, 'UploadFile', async (call) => {
              const rec = { steps: [] as string[], committed: false };
              calls.push(rec);
              for await (const m of call as AsyncIterable<UploadFileRequest>) {
                if (m.step?.$case === 'header') {
                  rec.steps.push('header');
                  if (rec.steps.length > 1) throw new InvalidArgumentError('only data may follow the header');
                } else if (m.step?.$case === 'finish') rec.steps.push(`finish:${m.step.value.bytes}`);
                else rec.steps.push(`data:${m.step?.value.length}`);
              }
              rec.steps.push('end');
              // As the node: only a stream whose last step is finish is a whole upload.
              if (rec.steps.at(-2)?.startsWith('finish:') !== true) throw new InvalidArgumentError('ended without finish');
              rec.committed = true;
              return { file: { path: 'x', version: 1, size: 0, sha256: '', updatedUnixMs: 0, chunks: 0, deleted: false } };
            }),
          } as never,
        },
      ],
    });
  });
  afterAll(() => srv.close(100));

  it('never sends finish for a body that broke off, so nothing is committed; a whole body ends with finish', async () => {
    const node = new NodeClient({}, { address: `127.0.0.1:${srv.port}` });
    for (let i = 0; i < 5; i++) {
      async function* body() {
        yield Buffer.alloc(1000, i);
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('client went away');
      }
      await expect(node.upload({ path: `cut/${i}` }, body(), new AbortController().signal)).rejects.toThrow();
    }
    async function* whole() {
      yield Buffer.alloc(1000, 9);
      yield Buffer.alloc(500, 8);
    }
    await node.upload({ path: 'whole' }, whole(), new AbortController().signal);
    // Every call ends: give the server a moment to record the last ones.
    await new Promise((r) => setTimeout(r, 300));
    // A cancel may overtake the header (the server then records less, or nothing): what matters is that no
    // broken-off call carried finish, so none was committed.
    const cut = calls.filter((c) => !c.committed);
    expect(cut.length).toBeGreaterThanOrEqual(calls.length - 1);
    for (const c of cut) expect(c.steps.some((x) => x.startsWith('finish'))).toBe(false);
    const done = calls.filter((c) => c.committed);
    expect(done).toHaveLength(1);
    expect(done[0]!.steps.slice(-2)).toEqual(['finish:1500', 'end']);
  });
});
