import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { createHash } from 'node:crypto';
import { callUnary, createClient, DataLossError, InvalidArgumentError, startGrpcServer, type RunningServer } from '@distri-vault/shared';
import { CryptoServiceClient, CryptoServiceService, type ChunkContext, type ChunksRequest, type ChunksResponse } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { CryptoEngine, MAX_SEAL_CHUNK_BYTES } from '../domain/crypto-engine';
import { loadKeyring, loadOrCreateVaultKey } from '../domain/vault-key';
import { KeyringManager } from '../domain/keyring';
import { FOLDER_A, FOLDER_B, makeTempDir, removeTempDir, seededBytes } from '../testing/fixtures';
import { CRYPTO_SERVICE_NAME, cryptoServiceImpl } from './crypto.grpc';

const log = pino({ level: 'silent' });

/** Calls a unary method and returns the raw status code (OK = 0) with the response. */
function rawCall<Req, Res>(
  client: CryptoServiceClient,
  method: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall,
  req: Req,
): Promise<{ code: number; details?: string; res?: Res }> {
  return new Promise((resolve) => {
    method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, res }),
    );
  });
}

describe('CryptoService over gRPC', () => {
  let dir: string;
  let srv: RunningServer;
  let client: CryptoServiceClient;
  let fingerprint: string;
  const fileId = seededBytes('grpc-file', 16);
  const context = (over: Partial<ChunkContext> = {}): ChunkContext => ({ folder: FOLDER_A, fileId, index: 0, last: true, ...over });

  beforeAll(async () => {
    dir = await makeTempDir();
    const { key } = await loadOrCreateVaultKey(dir);
    fingerprint = key.fingerprint;
    srv = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      services: [{ name: CRYPTO_SERVICE_NAME, definition: CryptoServiceService, implementation: cryptoServiceImpl(new CryptoEngine({ vaultKey: key }), log) }],
    });
    client = createClient(CryptoServiceClient, `127.0.0.1:${srv.port}`);
  });
  afterAll(async () => {
    client?.close();
    await srv?.close();
    await removeTempDir(dir);
  });

  it('GetKeyInfo returns the fingerprint, format version and creation time', async () => {
    const info = await callUnary(client, client.getKeyInfo, {});
    expect(info).toEqual({ keyFingerprint: fingerprint, formatVersion: 1, createdUnixMs: expect.any(Number), previousFingerprints: [] });
    expect(info.createdUnixMs).toBeGreaterThan(1_600_000_000_000);
  });

  it('CreateDataKey, SealChunk and OpenChunk round-trip a maximal chunk', async () => {
    const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
    expect(wrappedKey.length).toBe(61);
    const plaintext = seededBytes('grpc-chunk', MAX_SEAL_CHUNK_BYTES);
    const sealed = await callUnary(client, client.sealChunk, { wrappedKey, context: context(), plaintext });
    expect(sealed.ciphertext.length).toBe(plaintext.length + 29);
    expect(sealed.id).toBe(createHash('sha256').update(sealed.ciphertext).digest('hex'));
    const opened = await callUnary(client, client.openChunk, { wrappedKey, context: context(), ciphertext: sealed.ciphertext });
    expect(opened.plaintext.equals(plaintext)).toBe(true);
  });

  it('round-trips an empty chunk and an empty manifest', async () => {
    const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_B });
    const c = context({ folder: FOLDER_B, index: 7, last: false });
    const sealed = await callUnary(client, client.sealChunk, { wrappedKey, context: c, plaintext: Buffer.alloc(0) });
    expect(sealed.ciphertext.length).toBe(29);
    expect((await callUnary(client, client.openChunk, { wrappedKey, context: c, ciphertext: sealed.ciphertext })).plaintext.length).toBe(0);
    const m = await callUnary(client, client.sealManifest, { folder: FOLDER_B, plaintext: Buffer.alloc(0) });
    expect((await callUnary(client, client.openManifest, { folder: FOLDER_B, ciphertext: m.ciphertext })).plaintext.length).toBe(0);
  });

  it('SealManifest and OpenManifest round-trip', async () => {
    const plaintext = seededBytes('grpc-manifest', 70_000);
    const sealed = await callUnary(client, client.sealManifest, { folder: FOLDER_A, plaintext });
    expect(sealed.id).toBe(createHash('sha256').update(sealed.ciphertext).digest('hex'));
    const opened = await callUnary(client, client.openManifest, { folder: FOLDER_A, ciphertext: sealed.ciphertext });
    expect(opened.plaintext.equals(plaintext)).toBe(true);
  });

  it('answers INVALID_ARGUMENT for malformed requests of every RPC', async () => {
    const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
    const chunk = (await callUnary(client, client.sealChunk, { wrappedKey, context: context(), plaintext: Buffer.from('x') })).ciphertext;
    const manifest = (await callUnary(client, client.sealManifest, { folder: FOLDER_A, plaintext: Buffer.from('x') })).ciphertext;
    const INVALID = grpc.status.INVALID_ARGUMENT;
    expect((await rawCall(client, client.createDataKey, { folder: 'not-a-server-id' })).code).toBe(INVALID);
    expect((await rawCall(client, client.createDataKey, { folder: '' })).code).toBe(INVALID);
    expect((await rawCall(client, client.sealChunk, { wrappedKey, context: context({ fileId: Buffer.alloc(15) }), plaintext: Buffer.from('x') })).code).toBe(INVALID);
    expect((await rawCall(client, client.sealChunk, { wrappedKey, context: undefined, plaintext: Buffer.from('x') })).code).toBe(INVALID);
    expect((await rawCall(client, client.sealChunk, { wrappedKey: wrappedKey.subarray(0, 60), context: context(), plaintext: Buffer.from('x') })).code).toBe(INVALID);
    expect((await rawCall(client, client.sealChunk, { wrappedKey, context: context(), plaintext: Buffer.alloc(MAX_SEAL_CHUNK_BYTES + 1) })).code).toBe(INVALID);
    expect((await rawCall(client, client.openChunk, { wrappedKey, context: context({ folder: 'x' }), ciphertext: chunk })).code).toBe(INVALID);
    expect((await rawCall(client, client.openChunk, { wrappedKey, context: context(), ciphertext: chunk.subarray(0, 28) })).code).toBe(INVALID);
    const badVersion = Buffer.from(wrappedKey);
    badVersion[0] = 2;
    expect((await rawCall(client, client.openChunk, { wrappedKey: badVersion, context: context(), ciphertext: chunk })).code).toBe(INVALID);
    expect((await rawCall(client, client.sealManifest, { folder: 'x', plaintext: Buffer.from('x') })).code).toBe(INVALID);
    const v3 = Buffer.from(manifest);
    v3[0] = 3;
    expect((await rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: v3 })).code).toBe(grpc.status.DATA_LOSS);
    // Through the shared client helper the status comes back as the domain error.
    await expect(callUnary(client, client.createDataKey, { folder: 'x' })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('answers DATA_LOSS, with no plaintext, when authentication fails', async () => {
    const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
    const chunk = (await callUnary(client, client.sealChunk, { wrappedKey, context: context(), plaintext: seededBytes('dl', 500) })).ciphertext;
    const manifest = (await callUnary(client, client.sealManifest, { folder: FOLDER_A, plaintext: seededBytes('dlm', 500) })).ciphertext;
    const LOSS = grpc.status.DATA_LOSS;
    const flipped = Buffer.from(chunk);
    flipped[100] ^= 1;
    for (const req of [
      { wrappedKey, context: context(), ciphertext: flipped },
      { wrappedKey, context: context({ index: 1 }), ciphertext: chunk },
      { wrappedKey, context: context({ last: false }), ciphertext: chunk },
      { wrappedKey, context: context({ fileId: seededBytes('other', 16) }), ciphertext: chunk },
      { wrappedKey, context: context({ folder: FOLDER_B }), ciphertext: chunk },
    ]) {
      const r = await rawCall(client, client.openChunk, req);
      expect(r.code).toBe(LOSS);
      expect(r.res).toBeUndefined();
    }
    const badKey = Buffer.from(wrappedKey);
    badKey[30] ^= 1;
    expect((await rawCall(client, client.sealChunk, { wrappedKey: badKey, context: context(), plaintext: Buffer.from('x') })).code).toBe(LOSS);
    const badManifest = Buffer.from(manifest);
    badManifest[badManifest.length - 1] ^= 1;
    expect((await rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: badManifest })).code).toBe(LOSS);
    expect((await rawCall(client, client.openManifest, { folder: FOLDER_B, ciphertext: manifest })).code).toBe(LOSS);
    await expect(callUnary(client, client.openManifest, { folder: FOLDER_B, ciphertext: manifest })).rejects.toBeInstanceOf(DataLossError);
  });

  /** Runs a Chunks stream: writes `reqs` (all at once, or only after `readAfter` ms), collects the answers and the status. */
  function chunksCall(reqs: ChunksRequest[]): Promise<{ answers: ChunksResponse[]; code: number; details: string }> {
    const call = client.chunks();
    const answers: ChunksResponse[] = [];
    return new Promise((resolve) => {
      call.on('data', (m: ChunksResponse) => answers.push(m));
      call.on('error', () => undefined);
      call.on('status', (st: grpc.StatusObject) => resolve({ answers, code: st.code, details: st.details }));
      for (const r of reqs) call.write(r);
      call.end();
    });
  }

  it('Chunks: seals and opens many chunks over one stream, one answer per request in order, a bad item failing alone', async () => {
    const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
    const plains = Array.from({ length: 12 }, (_, i) => seededBytes(`stream-${i}`, 1000 + i * 40_000));
    const sealed = await chunksCall(plains.map((plaintext, i) => ({ seq: 100 + i, op: { $case: 'seal', value: { wrappedKey, context: context({ index: i, last: false }), plaintext } } })));
    expect([sealed.code, sealed.answers.map((a) => a.seq)]).toEqual([grpc.status.OK, plains.map((_, i) => 100 + i)]);
    const envelopes = sealed.answers.map((a) => (a.result?.$case === 'sealed' ? a.result.value : undefined)!);
    for (const e of envelopes) expect(e.id).toBe(createHash('sha256').update(e.ciphertext).digest('hex'));
    // The same envelopes as the unary path would accept: open them over the stream, one tampered, one
    // with a malformed context, one with the wrong index (a swap): those three fail alone.
    const tampered = Buffer.from(envelopes[3]!.ciphertext);
    tampered[tampered.length - 1]! ^= 1;
    const opens: ChunksRequest[] = envelopes.map((e, i) => ({ seq: i + 1, op: { $case: 'open', value: { wrappedKey, context: context({ index: i, last: false }), ciphertext: i === 3 ? tampered : e.ciphertext } } }));
    opens[5] = { seq: 6, op: { $case: 'open', value: { wrappedKey, context: context({ folder: '../x', index: 5, last: false }), ciphertext: envelopes[5]!.ciphertext } } };
    opens[7] = { seq: 8, op: { $case: 'open', value: { wrappedKey, context: context({ index: 6, last: false }), ciphertext: envelopes[7]!.ciphertext } } };
    const opened = await chunksCall(opens);
    expect(opened.code).toBe(grpc.status.OK);
    expect(opened.answers.map((a) => [a.seq, a.result?.$case === 'error' ? a.result.value.code : a.result?.$case])).toEqual(
      plains.map((_, i) => [i + 1, i === 3 || i === 7 ? grpc.status.DATA_LOSS : i === 5 ? grpc.status.INVALID_ARGUMENT : 'opened']),
    );
    for (const [i, a] of opened.answers.entries()) if (a.result?.$case === 'opened') expect(a.result.value.plaintext.equals(plains[i]!)).toBe(true);
  });

  it('Chunks: creates data keys, seals and opens manifests like the unary calls; a manifest for another folder or tampered fails alone', async () => {
    const plain = seededBytes('manifest-stream', 50_000);
    const first = await chunksCall([
      { seq: 1, op: { $case: 'createDataKey', value: { folder: FOLDER_A } } },
      { seq: 2, op: { $case: 'sealManifest', value: { folder: FOLDER_A, plaintext: plain } } },
      { seq: 3, op: { $case: 'createDataKey', value: { folder: '../x' } } },
    ]);
    expect([first.code, first.answers.map((a) => [a.seq, a.result?.$case === 'error' ? a.result.value.code : a.result?.$case])]).toEqual([
      grpc.status.OK,
      [
        [1, 'dataKey'],
        [2, 'sealedManifest'],
        [3, grpc.status.INVALID_ARGUMENT],
      ],
    ]);
    const key = first.answers[0]!.result?.$case === 'dataKey' ? first.answers[0]!.result.value.wrappedKey : Buffer.alloc(0);
    const sealed = first.answers[1]!.result?.$case === 'sealedManifest' ? first.answers[1]!.result.value : undefined;
    expect(sealed?.id).toBe(createHash('sha256').update(sealed!.ciphertext).digest('hex'));
    // The stream's data key seals a chunk through the unary call; the stream's manifest opens through it too.
    await expect(callUnary(client, client.sealChunk, { wrappedKey: key, context: context(), plaintext: Buffer.from('k') })).resolves.toMatchObject({ id: expect.any(String) });
    expect((await callUnary(client, client.openManifest, { folder: FOLDER_A, ciphertext: sealed!.ciphertext })).plaintext.equals(plain)).toBe(true);
    const tampered = Buffer.from(sealed!.ciphertext);
    tampered[40]! ^= 1;
    const opened = await chunksCall([
      { seq: 7, op: { $case: 'openManifest', value: { folder: FOLDER_A, ciphertext: sealed!.ciphertext } } },
      { seq: 8, op: { $case: 'openManifest', value: { folder: FOLDER_B, ciphertext: sealed!.ciphertext } } },
      { seq: 9, op: { $case: 'openManifest', value: { folder: FOLDER_A, ciphertext: tampered } } },
    ]);
    expect(opened.answers.map((a) => [a.seq, a.result?.$case === 'error' ? a.result.value.code : a.result?.$case])).toEqual([
      [7, 'openedManifest'],
      [8, grpc.status.DATA_LOSS],
      [9, grpc.status.DATA_LOSS],
    ]);
    expect(opened.answers[0]!.result?.$case === 'openedManifest' && opened.answers[0]!.result.value.plaintext.equals(plain)).toBe(true);
  });

  it('Chunks: a request with no operation ends the stream with INVALID_ARGUMENT after answering the ones before it', async () => {
    const { wrappedKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
    const r = await chunksCall([{ seq: 1, op: { $case: 'seal', value: { wrappedKey, context: context(), plaintext: Buffer.from('x') } } }, { seq: 2 }, { seq: 3, op: { $case: 'seal', value: { wrappedKey, context: context(), plaintext: Buffer.from('y') } } }]);
    expect(r.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.answers.map((a) => a.seq)).toEqual([1]);
  });

  it('serves gRPC health for the service name', async () => {
    const healthDef = {
      check: {
        path: '/grpc.health.v1.Health/Check',
        requestStream: false,
        responseStream: false,
        // HealthCheckRequest { string service = 1 }; HealthCheckResponse { ServingStatus status = 1 } (1 = SERVING)
        requestSerialize: (s: string) => Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(s)]), Buffer.from(s)]),
        requestDeserialize: (b: Buffer) => b.toString(),
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    } as const;
    const Health = grpc.makeGenericClientConstructor(healthDef as unknown as grpc.ServiceDefinition, 'Health');
    const health = new Health(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      check(req: string, cb: (err: grpc.ServiceError | null, res: Buffer) => void): void;
    };
    try {
      const res = await new Promise<Buffer>((resolve, reject) => health.check(CRYPTO_SERVICE_NAME, (err, r) => (err ? reject(err) : resolve(r))));
      expect([...res]).toEqual([0x08, 0x01]);
    } finally {
      health.close();
    }
  });
});

describe('CryptoService RewrapDataKey over gRPC (rotation)', () => {
  let dir: string;
  let srv: RunningServer;
  let client: CryptoServiceClient;

  afterEach(async () => {
    client?.close();
    await srv?.close();
    await removeTempDir(dir);
  });

  it('re-wraps a data key of a previous vault key under the current one; the old chunk opens with it unchanged', async () => {
    dir = await makeTempDir();
    const k1 = (await loadOrCreateVaultKey(`${dir}/k1`)).key;
    const k2 = (await loadOrCreateVaultKey(`${dir}/k2`)).key;
    const stranger = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(`${dir}/k3`)).key });
    const before = new CryptoEngine({ vaultKey: k1 });
    srv = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      services: [{ name: CRYPTO_SERVICE_NAME, definition: CryptoServiceService, implementation: cryptoServiceImpl(new CryptoEngine({ vaultKey: k2, previousKeys: [k1] }), log) }],
    });
    client = createClient(CryptoServiceClient, `127.0.0.1:${srv.port}`);
    const fileId = seededBytes('rewrap-file', 16);
    const ctx = { folder: FOLDER_A, fileId, index: 0, last: true };
    const oldWrapped = await before.createDataKey(FOLDER_A);
    const chunk = await before.sealChunk(oldWrapped, ctx, Buffer.from('sealed before rotation'));

    expect(await callUnary(client, client.getKeyInfo, {})).toMatchObject({ keyFingerprint: k2.fingerprint, previousFingerprints: [k1.fingerprint] });
    const res = await callUnary(client, client.rewrapDataKey, { folder: FOLDER_A, wrappedKey: oldWrapped });
    expect(res.keyFingerprint).toBe(k2.fingerprint);
    expect(res.wrappedKey).toHaveLength(61);
    const onlyNew = new CryptoEngine({ vaultKey: k2 });
    expect((await onlyNew.openChunk(res.wrappedKey, ctx, chunk.ciphertext)).toString()).toBe('sealed before rotation');
    await expect(onlyNew.openChunk(oldWrapped, ctx, chunk.ciphertext)).rejects.toBeInstanceOf(DataLossError);

    const foreign = await stranger.createDataKey(FOLDER_A);
    expect((await rawCall(client, client.rewrapDataKey, { folder: FOLDER_A, wrappedKey: foreign })).code).toBe(grpc.status.DATA_LOSS);
    expect((await rawCall(client, client.rewrapDataKey, { folder: FOLDER_B, wrappedKey: oldWrapped })).code).toBe(grpc.status.DATA_LOSS);
    expect((await rawCall(client, client.rewrapDataKey, { folder: 'bad', wrappedKey: oldWrapped })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await rawCall(client, client.rewrapDataKey, { folder: FOLDER_A, wrappedKey: oldWrapped.subarray(0, 60) })).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('rotates and retires the vault key online: durable on disk before the answer, engine swapped, bad requests refused', async () => {
    dir = await makeTempDir();
    const ring = await loadKeyring(dir);
    const engine = new CryptoEngine({ vaultKey: ring.current.key });
    const keyring = new KeyringManager({ engine }, { dir });
    srv = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      services: [{ name: CRYPTO_SERVICE_NAME, definition: CryptoServiceService, implementation: cryptoServiceImpl(engine, log, keyring) }],
    });
    client = createClient(CryptoServiceClient, `127.0.0.1:${srv.port}`);
    const first = ring.current.key.fingerprint;
    const ctx = { folder: FOLDER_A, fileId: seededBytes('online', 16), index: 0, last: true };
    const { wrappedKey: oldWrapped } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
    const chunk = await callUnary(client, client.sealChunk, { wrappedKey: oldWrapped, context: ctx, plaintext: Buffer.from('kept') });
    const oldManifest = await callUnary(client, client.sealManifest, { folder: FOLDER_A, plaintext: Buffer.from('old manifest') });

    const rot = await callUnary(client, client.rotateVaultKey, {});
    expect(rot.previousFingerprint).toBe(first);
    expect(rot.previousFingerprints).toEqual([first]);
    expect(rot.keyFingerprint).not.toBe(first);
    // Durable: a fresh load of the directory sees the same keyring.
    const onDisk = await loadKeyring(dir);
    expect([onDisk.current.key.fingerprint, onDisk.previous.map((k) => k.fingerprint)]).toEqual([rot.keyFingerprint, [first]]);
    expect(await callUnary(client, client.getKeyInfo, {})).toMatchObject({ keyFingerprint: rot.keyFingerprint, previousFingerprints: [first] });
    // The old key still opens what it sealed until retired; a re-wrap moves the data key under the new one.
    expect((await callUnary(client, client.openManifest, { folder: FOLDER_A, ciphertext: oldManifest.ciphertext })).plaintext.toString()).toBe('old manifest');
    const re = await callUnary(client, client.rewrapDataKey, { folder: FOLDER_A, wrappedKey: oldWrapped });
    expect(re.keyFingerprint).toBe(rot.keyFingerprint);

    expect((await rawCall(client, client.retireVaultKey, { fingerprint: rot.keyFingerprint })).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await rawCall(client, client.retireVaultKey, { fingerprint: '0123456789abcdef' })).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await rawCall(client, client.retireVaultKey, { fingerprint: '../vault-key' })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await callUnary(client, client.retireVaultKey, { fingerprint: first })).previousFingerprints).toEqual([]);
    expect((await loadKeyring(dir)).previous).toEqual([]);

    // Shredded: the old manifest and the old wrapping no longer open; the re-wrapped key still opens the chunk.
    expect((await rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: oldManifest.ciphertext })).code).toBe(grpc.status.DATA_LOSS);
    expect((await rawCall(client, client.openChunk, { wrappedKey: oldWrapped, context: ctx, ciphertext: chunk.ciphertext })).code).toBe(grpc.status.DATA_LOSS);
    expect((await callUnary(client, client.openChunk, { wrappedKey: re.wrappedKey, context: ctx, ciphertext: chunk.ciphertext })).plaintext.toString()).toBe('kept');
  });

  it('refuses online rotation without a keyring manager (FAILED_PRECONDITION)', async () => {
    dir = await makeTempDir();
    const { key } = await loadOrCreateVaultKey(dir);
    srv = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      services: [{ name: CRYPTO_SERVICE_NAME, definition: CryptoServiceService, implementation: cryptoServiceImpl(new CryptoEngine({ vaultKey: key }), log) }],
    });
    client = createClient(CryptoServiceClient, `127.0.0.1:${srv.port}`);
    expect((await rawCall(client, client.rotateVaultKey, {})).code).toBe(grpc.status.FAILED_PRECONDITION);
  });
});

/**
 * The tamper suite's "replay an old manifest", at the service: every case answers DATA_LOSS and no
 * plaintext. (a) a manifest, and the data key it carries, sealed before a rotation and its retirement
 * (superseded by the rotation's replacement, or shredded); (b) a manifest of another folder, or of
 * another node, offered as this folder's. (c), an older version where a newer one is expected, is the
 * node's business (objects are asked for by ID and hash-checked): apps/peer-node/src/domain/vault-replay.spec.ts.
 */
describe('CryptoService: replay of an old manifest (tamper suite)', () => {
  let dir: string;
  let srv: RunningServer;
  let client: CryptoServiceClient;

  afterEach(async () => {
    client?.close();
    await srv?.close();
    await removeTempDir(dir);
  });

  const LOSS = grpc.status.DATA_LOSS;
  /** DATA_LOSS and no response (so no plaintext). */
  const lost = async (p: Promise<{ code: number; res?: unknown }>) => {
    const r = await p;
    expect([r.code, r.res]).toEqual([LOSS, undefined]);
  };

  it('answers DATA_LOSS, with no plaintext, for manifests and data keys sealed before a retired key, and for manifests of another folder or node', async () => {
    dir = await makeTempDir();
    const ring = await loadKeyring(`${dir}/node`);
    const engine = new CryptoEngine({ vaultKey: ring.current.key });
    srv = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      log,
      services: [{ name: CRYPTO_SERVICE_NAME, definition: CryptoServiceService, implementation: cryptoServiceImpl(engine, log, new KeyringManager({ engine }, { dir: `${dir}/node` })) }],
    });
    client = createClient(CryptoServiceClient, `127.0.0.1:${srv.port}`);
    const stranger = new CryptoEngine({ vaultKey: (await loadOrCreateVaultKey(`${dir}/stranger`)).key });
    const ctx = { folder: FOLDER_A, fileId: seededBytes('replay', 16), index: 0, last: true };
    const manifestText = Buffer.from('{"path":"replayed.txt","version":1}');

    // Generation 0: a version's data key, one chunk, its manifest.
    const { wrappedKey: oldKey } = await callUnary(client, client.createDataKey, { folder: FOLDER_A });
    const chunk = await callUnary(client, client.sealChunk, { wrappedKey: oldKey, context: ctx, plaintext: Buffer.from('chunk of v1') });
    const oldManifest = (await callUnary(client, client.sealManifest, { folder: FOLDER_A, plaintext: manifestText })).ciphertext;

    // (b) Of another folder (same key) or another node (its key, its folder or this one): never, rotation or not.
    const otherFolder = (await callUnary(client, client.sealManifest, { folder: FOLDER_B, plaintext: manifestText })).ciphertext;
    const otherNode = (await stranger.sealManifest(FOLDER_B, manifestText)).ciphertext;
    const forged = (await stranger.sealManifest(FOLDER_A, manifestText)).ciphertext;
    const strangerKey = await stranger.createDataKey(FOLDER_A);
    const foreignCases = async () => {
      await lost(rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: otherFolder }));
      await lost(rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: otherNode }));
      await lost(rawCall(client, client.openManifest, { folder: FOLDER_B, ciphertext: otherNode }));
      await lost(rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: forged }));
      await lost(rawCall(client, client.openManifest, { folder: FOLDER_B, ciphertext: oldManifest }));
      await lost(rawCall(client, client.rewrapDataKey, { folder: FOLDER_A, wrappedKey: strangerKey }));
      await lost(rawCall(client, client.rewrapDataKey, { folder: FOLDER_B, wrappedKey: oldKey }));
    };
    await foreignCases();

    // Rotation: the replacement carries the same data key re-wrapped, sealed under the new key.
    const rot = await callUnary(client, client.rotateVaultKey, {});
    const { wrappedKey: newKey } = await callUnary(client, client.rewrapDataKey, { folder: FOLDER_A, wrappedKey: oldKey });
    const replacement = (await callUnary(client, client.sealManifest, { folder: FOLDER_A, plaintext: manifestText })).ciphertext;
    // Until the retire, the superseded manifest still opens (the node prefers the replacement by generation).
    expect((await rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: oldManifest })).code).toBe(grpc.status.OK);
    expect((await callUnary(client, client.retireVaultKey, { fingerprint: rot.previousFingerprint })).previousFingerprints).toEqual([]);

    // (a) After it: the superseded manifest, and the data key it carries, open nothing and seal nothing.
    await lost(rawCall(client, client.openManifest, { folder: FOLDER_A, ciphertext: oldManifest }));
    await lost(rawCall(client, client.openChunk, { wrappedKey: oldKey, context: ctx, ciphertext: chunk.ciphertext }));
    await lost(rawCall(client, client.sealChunk, { wrappedKey: oldKey, context: { ...ctx, index: 1 }, plaintext: Buffer.from('x') }));
    await lost(rawCall(client, client.rewrapDataKey, { folder: FOLDER_A, wrappedKey: oldKey }));
    await foreignCases();
    // The replacement and the re-wrapped key are the only way in (positive control).
    expect((await callUnary(client, client.openManifest, { folder: FOLDER_A, ciphertext: replacement })).plaintext.equals(manifestText)).toBe(true);
    expect((await callUnary(client, client.openChunk, { wrappedKey: newKey, context: ctx, ciphertext: chunk.ciphertext })).plaintext.toString()).toBe('chunk of v1');
    // A process restarted on the same key directory agrees (the retirement is on disk).
    const restarted = new CryptoEngine({ vaultKey: (await loadKeyring(`${dir}/node`)).current.key });
    await expect(restarted.openManifest(FOLDER_A, oldManifest)).rejects.toBeInstanceOf(DataLossError);
  });
});
