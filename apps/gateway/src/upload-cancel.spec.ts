/**
 * A broken-off upload must never reach the node as a complete one. grpc-js cancels a call through Node's
 * http2 `close()`, which half-closes the stream before it sends RST_STREAM; a node reading that half-close
 * as the end of the body commits a truncated version (found by the fuzz system test,
 * test/system/fuzz-grpc.spec.ts; here the server saw just the header, then the end). So the gateway sends a
 * second header and half-closes instead, which the node refuses. This test records, on a real gRPC server,
 * the frames a broken-off upload delivers.
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
                } else rec.steps.push(`data:${m.step?.value.length}`);
              }
              rec.steps.push('end');
              // What a node does on a half-close: it takes the body as complete.
              rec.committed = true;
              return { file: { path: 'x', version: 1, size: 0, sha256: '', updatedUnixMs: 0, chunks: 0, deleted: false } };
            }),
          } as never,
        },
      ],
    });
  });
  afterAll(() => srv.close(100));

  it('sends a second header and half-closes, so the node refuses what it got; nothing is committed', async () => {
    const node = new NodeClient({}, { address: `127.0.0.1:${srv.port}` });
    for (let i = 0; i < 5; i++) {
      async function* body() {
        yield Buffer.alloc(1000, i);
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('client went away');
      }
      await expect(node.upload({ path: `cut/${i}` }, body(), new AbortController().signal)).rejects.toThrow();
    }
    // Every call ends: give the server a moment to record the last one.
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toHaveLength(5);
    for (const c of calls) {
      expect(c.committed).toBe(false);
      // The second header arrived (after whatever data was sent) and the node never saw an end of the body.
      // (With call.cancel() the server saw ['header', 'end'] and committed an empty file, every time.)
      expect(c.steps[0]).toBe('header');
      expect(c.steps.filter((x) => x === 'header')).toHaveLength(2);
      expect(c.steps).not.toContain('end');
    }
  });
});
