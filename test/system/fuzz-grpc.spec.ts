/**
 * Hostile gRPC clients and peers (issue #8, "Hostile clients and peers"), against real processes (2 nodes,
 * no gateway): NodeService (plaintext), StorageService and CryptoService (loopback), and PeerService over
 * TLS as an outsider (no session) and as an authenticated member (a test identity holding the network
 * secret). Each RPC gets hand-written bad messages (bad IDs and paths, wrong kinds, data at and past the
 * size limits, steps out of order, early half-close, a cancel mid-upload) and then seeded random frames:
 * valid encodings with bytes flipped, cut or appended, and pure random bytes, sent raw.
 *
 * Expected: every call ends with a clear status (INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED,
 * PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE, RESOURCE_EXHAUSTED, DATA_LOSS for bytes that do
 * not match their hash or key, CANCELLED where the client cancelled), never UNKNOWN, INTERNAL,
 * UNAVAILABLE or a deadline (a hang). A frame that does not decode as protobuf at all is INVALID_ARGUMENT
 * "request message does not decode" (libs/shared decode-guard.ts; grpc-js itself answers INTERNAL, which this
 * test found before the guard existed); such frames are counted.
 * No process dies; nothing is stored: storage listings, the node's file list and every data and key
 * directory are unchanged, and the known file still reads back byte for byte.
 *
 * Side-effect-only RPCs (RotateVaultKey, StartRecovery, RecoverFolder) are not fuzzed: any input is valid.
 * FUZZ_SEED=<n> replays a run; FUZZ_GRPC_FRAMES sets the random frames per RPC (6).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createClient, MAX_CHUNK_OBJECT_BYTES, MAX_MESSAGE_BYTES, MAX_OBJECT_BYTES } from '@distri-vault/shared';
import { NodeServiceService, UploadFileRequest, DownloadFileRequest, StatFileRequest, ListFilesRequest, DeleteFileRequest, ListVersionsRequest, RestoreVersionRequest, DeleteVersionRequest, SendMessageRequest, ListMessagesRequest, ShredFileRequest } from '@distri-vault/shared/generated/vault/node/v1/node';
import { StorageServiceService, PutObjectRequest, GetObjectRequest, HasObjectsRequest, ListObjectsRequest, DeleteObjectRequest, StatFolderRequest, ObjectsRequest } from '@distri-vault/shared/generated/vault/storage/v1/storage';
import { CryptoServiceService, CreateDataKeyRequest, SealChunkRequest, OpenChunkRequest, SealManifestRequest, OpenManifestRequest, RewrapDataKeyRequest, RetireVaultKeyRequest } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { PeerServiceClient, PeerServiceService, HandshakeRequest, StoreChunkRequest, GetFileRequest, SyncFolderRequest, type HandshakeResponse, type Hello } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import { testPeer, type TestPeer } from '../../apps/peer-node/src/testing/peer-fixtures';
import { membershipProof, newNonce, PROOF_CONTEXT, signTranscript, transcript } from '../../apps/peer-node/src/domain/handshake';
import { CAPABILITIES, PROTOCOL_VERSION, SESSION_METADATA_KEY } from '../../apps/peer-node/src/domain/protocol';
import { peerClientCredentials, PEER_CHANNEL_OPTIONS } from '../../apps/peer-node/src/adapters/tls';
import { eventually } from '../helpers';
import { diskSnapshot, fuzzSeed, networkProcs, Rng } from '../fuzz-helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');

jest.setTimeout(180_000);

const { status } = grpc;
const FRAMES = Number(process.env['FUZZ_GRPC_FRAMES'] ?? 6);
const CALL_MS = 20_000;
const KNOWN = 'fuzz/known.bin';
const KNOWN_SIZE = 1024 * 1024 + 9;
const CLEAR = new Set([status.INVALID_ARGUMENT, status.NOT_FOUND, status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.FAILED_PRECONDITION, status.OUT_OF_RANGE, status.RESOURCE_EXHAUSTED, status.DATA_LOSS, status.ALREADY_EXISTS, status.ABORTED]);
const UNDECODABLE = /^request message does not decode/;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const id = (a: string) => Buffer.from(a).toString('hex').padEnd(64, '0').slice(0, 64);

interface MsgFns<T> {
  encode(m: T): { finish(): Uint8Array };
  fromPartial(p: any): T;
}
/** A unary call whose answer is decoded. */
function unary(client: grpc.Client, def: MethodDef & { responseDeserialize: (b: Buffer) => any }, frame: Buffer): Promise<any> {
  return new Promise((resolve, reject) => client.makeUnaryRequest(def.path, (b: Buffer) => b, def.responseDeserialize, frame, { deadline: Date.now() + CALL_MS }, (err, v) => (err ? reject(err) : resolve(v))));
}
const enc = <T>(t: MsgFns<T>, p: unknown): Buffer => Buffer.from(t.encode(t.fromPartial(p)).finish());

type MethodDef = { path: string; requestStream: boolean; responseStream: boolean };
interface Outcome {
  code: number;
  details: string;
  responses: number;
}

/**
 * One raw call of `def` with `frames` (already encoded). `end`: 'end' half-closes after the frames,
 * 'cancel' cancels the call after them (an upload broken off), 'none' leaves it open until the server ends it.
 */
function callRaw(client: grpc.Client, def: MethodDef, frames: Buffer[], md = new grpc.Metadata(), end: 'end' | 'cancel' | 'none' = 'end'): Promise<Outcome> {
  const idf = (b: Buffer) => b;
  const opts = { deadline: Date.now() + CALL_MS };
  return new Promise((resolve) => {
    let responses = 0;
    const done = (err: grpc.ServiceError | null) => resolve({ code: err ? err.code : status.OK, details: err ? err.details : '', responses });
    if (!def.requestStream && !def.responseStream) {
      client.makeUnaryRequest(def.path, idf, idf, frames[0] ?? Buffer.alloc(0), md, opts, (err) => {
        if (!err) responses++;
        done(err);
      });
      return;
    }
    let call: any;
    if (!def.requestStream) call = client.makeServerStreamRequest(def.path, idf, idf, frames[0] ?? Buffer.alloc(0), md, opts);
    else if (!def.responseStream) {
      call = client.makeClientStreamRequest(def.path, idf, idf, md, opts, (err) => {
        if (!err) responses++;
      });
    } else call = client.makeBidiStreamRequest(def.path, idf, idf, md, opts);
    call.on('data', () => responses++);
    call.on('error', () => undefined);
    call.on('status', (st: grpc.StatusObject) => resolve({ code: st.code, details: st.details, responses: responses }));
    if (def.requestStream) {
      for (const f of frames) call.write(f);
      if (end === 'end') call.end();
      else if (end === 'cancel') setTimeout(() => call.cancel(), 200);
    }
  });
}

describe('gRPC fuzz (2 nodes: NodeService, StorageService, CryptoService, PeerService; seeded)', () => {
  let root: string;
  let net: any;
  let rng: Rng;
  let seed: number;
  let owner: string;
  let member: TestPeer;
  let outsider: TestPeer;
  let knownSha: string;
  let nodeClient: grpc.Client;
  let storageClient: grpc.Client;
  let cryptoClient: grpc.Client;
  const clients: grpc.Client[] = [];
  const problems: string[] = [];
  let undecodable = 0;
  let calls = 0;
  let before: unknown;
  let gcRecords = 0;
  let gcRecordsBefore = 0;

  const plain = (addr: string) => {
    const c = new grpc.Client(addr, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20, 'grpc.max_receive_message_length': 64 << 20 });
    clients.push(c);
    return c;
  };
  const peerClient = () => {
    const tls = peerClientCredentials();
    const c = createClient(PeerServiceClient, net.nodes[0].peerAddress, tls.credentials, { ...PEER_CHANNEL_OPTIONS, 'grpc.max_send_message_length': 64 << 20 });
    clients.push(c);
    return { client: c as unknown as grpc.Client, tls };
  };

  /** Everything a bad call must not change. */
  async function state() {
    const out: Record<string, unknown> = {};
    for (const n of net.nodes) {
      const s = plain(n.storageAddress);
      const folders = (await unary(s, StorageServiceService.listFolders, Buffer.alloc(0))).folders as string[];
      out[`${n.name} folders`] = folders;
      for (const f of folders) out[`${n.name} ${f}`] = await unary(s, StorageServiceService.statFolder, enc(StatFolderRequest, { folder: f }));
    }
    out['files'] = await unary(nodeClient, NodeServiceService.listFiles, enc(ListFilesRequest, {}));
    out['versions'] = await unary(nodeClient, NodeServiceService.listVersions, enc(ListVersionsRequest, { path: KNOWN }));
    const disk = await diskSnapshot(net.nodes.flatMap((n: any) => [n.dataDir, n.keysDir, n.identityDir]));
    // GC records of the owner's folder are counted apart: an upload refused at its end (size lie, cancel)
    // had stored chunks, and the node collects them with a GC record (which stays, as tombstones do).
    out['disk'] = disk.filter((l) => !l.includes(`${owner}/gc/`));
    out['stats'] = undefined;
    gcRecords = disk.filter((l) => l.includes(`${owner}/gc/`)).length;
    for (const k of Object.keys(out)) if (k.endsWith(owner)) out[k] = { ...(out[k] as object), gcRecords: undefined, gcRecordBytes: undefined };
    return out;
  }

  beforeAll(async () => {
    seed = fuzzSeed('gRPC fuzz');
    rng = new Rng(seed);
    root = await mkdtemp(join(tmpdir(), 'dv-fuzz-grpc-'));
    net = await startNetwork({ root, nodes: 2, gateway: false, output: { dir: join(root, 'logs') }, env: { LOG_LEVEL: 'warn', NODE_HEARTBEAT_MS: '500', NODE_REPLICAS: '2' } });
    nodeClient = plain(net.nodes[0].clientAddress);
    storageClient = plain(net.nodes[0].storageAddress);
    cryptoClient = plain(net.nodes[0].cryptoAddress);
    const secret = Buffer.from((await readFile(join(root, 'network.secret'), 'utf8')).trim(), 'hex');
    member = await testPeer(join(root, 'fuzz-member'), secret);
    outsider = await testPeer(join(root, 'fuzz-outsider'), Buffer.alloc(32, 9));
    // The known file, written on purpose through the real client API (the only valid write).
    await eventually(async () => {
      const r = await callRaw(nodeClient, NodeServiceService.getNodeInfo, [Buffer.alloc(0)]);
      return r.code === status.OK;
    }, 20_000, 'node up');
    const data: Buffer[] = [];
    let x = 12345;
    const bytes = Buffer.alloc(KNOWN_SIZE);
    for (let i = 0; i < KNOWN_SIZE; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      bytes[i] = x >>> 24;
    }
    knownSha = sha(bytes);
    data.push(enc(UploadFileRequest, { step: { $case: 'header', value: { path: KNOWN, size: KNOWN_SIZE } } }));
    for (let off = 0; off < KNOWN_SIZE; off += 256 * 1024) data.push(enc(UploadFileRequest, { step: { $case: 'data', value: bytes.subarray(off, off + 256 * 1024) } }));
    data.push(enc(UploadFileRequest, { step: { $case: 'finish', value: { bytes: KNOWN_SIZE } } }));
    await eventually(async () => (await callRaw(nodeClient, NodeServiceService.uploadFile, data)).code === status.OK, 30_000, 'the known file stored (peer connected)');
    const info = await new Promise<any>((resolve, reject) =>
      nodeClient.makeUnaryRequest(NodeServiceService.getNodeInfo.path, (b: Buffer) => b, NodeServiceService.getNodeInfo.responseDeserialize, Buffer.alloc(0), (err, v) => (err ? reject(err) : resolve(v))),
    );
    owner = info.serverId;
    const count = async (i: number) => (await diskSnapshot([join(net.nodes[i].dataDir, owner)])).length;
    await eventually(async () => (await count(1)) === (await count(0)), 30_000, 'the copy on node2');
    before = await state();
    gcRecordsBefore = gcRecords;
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  /** Runs one case; records a problem if its status is not clear (or is OK where OK is wrong). */
  async function expectClear(name: string, client: grpc.Client, def: MethodDef, frames: Buffer[], o: { md?: grpc.Metadata; end?: 'end' | 'cancel' | 'none'; ok?: boolean; raw?: boolean } = {}): Promise<Outcome> {
    calls++;
    const r = await callRaw(client, def, frames, o.md ?? new grpc.Metadata(), o.end ?? 'end');
    const what = `[seed ${seed}] ${def.path} ${name}`;
    if (r.code === status.INVALID_ARGUMENT && UNDECODABLE.test(r.details)) undecodable++;
    if (r.code === status.OK) {
      if (!o.ok && !o.raw) problems.push(`${what} -> OK`);
    } else if (r.code === status.CANCELLED) {
      if (o.end !== 'cancel') problems.push(`${what} -> CANCELLED ${r.details}`);
    } else if (!CLEAR.has(r.code)) problems.push(`${what} -> ${status[r.code]} ${r.details}`);
    return r;
  }
  const expectNoProblems = () => expect(problems.splice(0)).toEqual([]);

  /** Seeded random frames from `seeds`: bytes flipped, cut or appended; and pure random bytes. */
  function randomFrames(seeds: Buffer[]): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < FRAMES; i++) {
      if (i % 3 === 2 || seeds.length === 0) {
        out.push(rng.bytes(rng.int(200)));
        continue;
      }
      const b = Buffer.from(rng.pick(seeds));
      const op = rng.int(3);
      if (op === 0 && b.length) for (let k = 0; k <= rng.int(4); k++) b[rng.int(b.length)]! ^= 1 << rng.int(8);
      if (op === 1) out.push(b.subarray(0, rng.int(b.length + 1)));
      else if (op === 2) out.push(Buffer.concat([b, rng.bytes(1 + rng.int(40))]));
      else out.push(b);
    }
    return out;
  }

  const BAD_PATHS = ['', '..', '../etc/passwd', 'a/../../b', '/abs', 'a//b', 'a/./b', 'a\\b', 'nul\u0000byte', 'ctl\u0001x', 'x'.repeat(70_000), 'a/'.repeat(5000) + 'b'];
  // 'a' x 32 has the shape of a server ID but fails its check digits; the services check the shape only
// (see the report), so it is not among the bad folders: a write there would succeed.
const BAD_FOLDERS = ['', '..', '../x', 'A'.repeat(32), 'a'.repeat(31), 'a'.repeat(33), 'x'.repeat(100_000), '\u0000', 'aaaa/bbbb', '.tmp', '.quarantine'];
  const BAD_IDS = ['', 'zz', 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), '../' + 'a'.repeat(61), 'g'.repeat(64), 'a'.repeat(10_000)];

  it('NodeService: bad paths, versions, limits, offsets, messages; uploads out of order, lying sizes, cut short, oversize', async () => {
    const c = nodeClient;
    const N = NodeServiceService;
    const up = (p: unknown) => enc(UploadFileRequest, p);
    const header = (path: string, size?: number) => up({ step: { $case: 'header', value: { path, size } } });
    const data = (b: Buffer) => up({ step: { $case: 'data', value: b } });
    for (const p of BAD_PATHS) {
      await expectClear(`upload bad path ${JSON.stringify(p.slice(0, 20))}`, c, N.uploadFile, [header(p, 3), data(Buffer.from('abc'))]);
      await expectClear(`download bad path`, c, N.downloadFile, [enc(DownloadFileRequest, { path: p })]);
      await expectClear(`stat bad path`, c, N.statFile, [enc(StatFileRequest, { path: p })]);
      await expectClear(`delete bad path`, c, N.deleteFile, [enc(DeleteFileRequest, { path: p })]);
      await expectClear(`versions bad path`, c, N.listVersions, [enc(ListVersionsRequest, { path: p })]);
      await expectClear(`restore bad path`, c, N.restoreVersion, [enc(RestoreVersionRequest, { path: p, version: 1 })]);
      await expectClear(`delete version bad path`, c, N.deleteVersion, [enc(DeleteVersionRequest, { path: p, all: true })]);
      await expectClear(`shred bad path`, c, N.shredFile, [enc(ShredFileRequest, { path: p })]);
    }
    const fz = 'fz-grpc/never.bin';
    await expectClear('upload: data before the header', c, N.uploadFile, [data(Buffer.from('abc')), header(fz, 3)]);
    await expectClear('upload: two headers', c, N.uploadFile, [header(fz, 3), header(fz, 3), data(Buffer.from('abc'))]);
    await expectClear('upload: size says 10, 5 bytes come', c, N.uploadFile, [header(fz, 10), data(Buffer.from('abcde'))]);
    await expectClear('upload: size says 2, 5 bytes come', c, N.uploadFile, [header(fz, 2), data(Buffer.from('abcde'))]);
    await expectClear('upload: negative size', c, N.uploadFile, [header(fz, -1)]);
    await expectClear('upload: empty step', c, N.uploadFile, [up({}), data(Buffer.from('a'))]);
    await expectClear('upload: half-closed before any message', c, N.uploadFile, []);
    await expectClear('upload: cancelled after the header and some data', c, N.uploadFile, [header(fz, 1 << 20), data(Buffer.alloc(64 * 1024, 1))], { end: 'cancel' });
    // Without a size in the header: only the missing finish step tells the node the upload was cut short
    // (a client's cancel may reach it as a plain end of the stream).
    await expectClear('upload: no size, cancelled after some data', c, N.uploadFile, [header(fz), data(Buffer.alloc(64 * 1024, 1))], { end: 'cancel' });
    await expectClear('upload: no size, half-closed without finish', c, N.uploadFile, [header(fz), data(Buffer.alloc(64 * 1024, 1))]);
    await expectClear('upload: finish with a wrong byte count', c, N.uploadFile, [header(fz), data(Buffer.from('abc')), up({ step: { $case: 'finish', value: { bytes: 4 } } })]);
    await expectClear('upload: data after finish', c, N.uploadFile, [header(fz), up({ step: { $case: 'finish', value: { bytes: 0 } } }), data(Buffer.from('abc'))]);
    await expectClear('upload: a frame past the message limit', c, N.uploadFile, [header(fz, 10), data(Buffer.alloc(MAX_MESSAGE_BYTES + 1))]);
    // None of them made a version (their chunks stay on disk, unreferenced: see the final check).
    await expectClear('the path of the failed uploads has no version', c, N.statFile, [enc(StatFileRequest, { path: fz })]);
    // int64 values past 2^53 do not decode (longs: Number): INVALID_ARGUMENT (the decode guard).
    for (const v of [-1, 0, 999, 2 ** 53]) {
      const raw = v === 2 ** 53;
      await expectClear(`download version ${v}`, c, N.downloadFile, [enc(DownloadFileRequest, { path: KNOWN, version: v })], { raw });
      await expectClear(`stat version ${v}`, c, N.statFile, [enc(StatFileRequest, { path: KNOWN, version: v })], { raw });
      await expectClear(`restore version ${v}`, c, N.restoreVersion, [enc(RestoreVersionRequest, { path: KNOWN, version: v })], { raw });
      await expectClear(`delete version ${v}`, c, N.deleteVersion, [enc(DeleteVersionRequest, { path: KNOWN, version: v })], { raw });
      await expectClear(`shred version ${v}`, c, N.shredFile, [enc(ShredFileRequest, { path: KNOWN, version: v })], { raw });
    }
    await expectClear('download offset -1', c, N.downloadFile, [enc(DownloadFileRequest, { path: KNOWN, offset: -1 })]);
    await expectClear('download unknown path', c, N.downloadFile, [enc(DownloadFileRequest, { path: 'fz-grpc/missing' })]);
    await expectClear('list limit -1', c, N.listFiles, [enc(ListFilesRequest, { limit: -1 })]);
    await expectClear('list limit 10,001 (a page is cut)', c, N.listFiles, [enc(ListFilesRequest, { limit: 10_001 })], { ok: true });
    await expectClear('list limit 2^53', c, N.listFiles, [enc(ListFilesRequest, { limit: 2 ** 53 })], { raw: true });
    // A client mistake, answered as one: INVALID_ARGUMENT from the decode guard, not grpc-js's INTERNAL.
    const big = await expectClear('stat version 2^53, again', c, N.statFile, [enc(StatFileRequest, { path: KNOWN, version: 2 ** 53 })], { raw: true });
    expect([status[big.code], big.details]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(UNDECODABLE)]);
    await expectClear('list prefix with NUL', c, N.listFiles, [enc(ListFilesRequest, { prefix: 'a\u0000' })], { ok: true });
    await expectClear('list start_after huge', c, N.listFiles, [enc(ListFilesRequest, { startAfter: 'z'.repeat(100_000) })], { ok: true });
    const bad = (p: unknown) => enc(SendMessageRequest, p);
    for (const [n, m] of [
      ['bad recipient', { to: 'not-a-server-id', topic: 'fz', body: Buffer.from('x') }],
      ['recipient with a bad check', { to: 'a'.repeat(32), topic: 'fz', body: Buffer.from('x') }],
      ['unknown recipient', { to: outsider.identity.serverId, topic: 'fz', body: Buffer.from('x') }],
      ['empty topic', { topic: '', body: Buffer.from('x') }],
      ['bad topic', { topic: '-bad topic', body: Buffer.from('x') }],
      ['long topic', { topic: 'a'.repeat(65), body: Buffer.from('x') }],
      ['body past 64 KiB', { topic: 'fz', body: Buffer.alloc(65537) }],
    ] as const) await expectClear(`send message: ${n}`, c, N.sendMessage, [bad(m)]);
    await expectClear('list messages after an unknown ID (an empty page)', c, N.listMessages, [enc(ListMessagesRequest, { afterId: 'zz' })], { ok: true });
    await expectClear('list messages since -1', c, N.listMessages, [enc(ListMessagesRequest, { sinceUnixMs: -1 })], { ok: true });
    expectNoProblems();
  });

  it('StorageService: bad folders, kinds and IDs, bytes not matching their ID, objects past the limits, huge batches', async () => {
    const c = storageClient;
    const S = StorageServiceService;
    const small = Buffer.from('fuzz object');
    for (const f of BAD_FOLDERS) {
      await expectClear(`put bad folder ${JSON.stringify(f.slice(0, 12))}`, c, S.putObject, [enc(PutObjectRequest, { folder: f, kind: 1, id: sha(small), data: small })]);
      await expectClear('get bad folder', c, S.getObject, [enc(GetObjectRequest, { folder: f, kind: 1, id: sha(small) })]);
      await expectClear('has bad folder', c, S.hasObjects, [enc(HasObjectsRequest, { folder: f, kind: 1, ids: [sha(small)] })]);
      await expectClear('list bad folder', c, S.listObjects, [enc(ListObjectsRequest, { folder: f, kind: 1 })]);
      await expectClear('delete bad folder', c, S.deleteObject, [enc(DeleteObjectRequest, { folder: f, kind: 1, id: sha(small) })]);
      await expectClear('stat bad folder', c, S.statFolder, [enc(StatFolderRequest, { folder: f })]);
    }
    for (const i of BAD_IDS) {
      await expectClear(`put bad id ${i.slice(0, 12)}`, c, S.putObject, [enc(PutObjectRequest, { folder: owner, kind: 1, id: i, data: small })]);
      await expectClear('get bad id', c, S.getObject, [enc(GetObjectRequest, { folder: owner, kind: 1, id: i })]);
      await expectClear('delete bad id', c, S.deleteObject, [enc(DeleteObjectRequest, { folder: owner, kind: 1, id: i })]);
      await expectClear('list after a bad id (a start position, not a key)', c, S.listObjects, [enc(ListObjectsRequest, { folder: owner, kind: 1, startAfter: i })], { ok: true });
    }
    for (const k of [0, 4, 99, -1]) { // 3 is OBJECT_KIND_GC_RECORD: bytes to the store, checked by the peer-node
      await expectClear(`put kind ${k}`, c, S.putObject, [enc(PutObjectRequest, { folder: owner, kind: k, id: sha(small), data: small })]);
      await expectClear(`get kind ${k}`, c, S.getObject, [enc(GetObjectRequest, { folder: owner, kind: k, id: sha(small) })]);
      await expectClear(`list kind ${k}`, c, S.listObjects, [enc(ListObjectsRequest, { folder: owner, kind: k })]);
    }
    await expectClear('put: bytes do not match the ID', c, S.putObject, [enc(PutObjectRequest, { folder: owner, kind: 1, id: id('other'), data: small })]);
    await expectClear('put: uppercase ID of the bytes', c, S.putObject, [enc(PutObjectRequest, { folder: owner, kind: 1, id: sha(small).toUpperCase(), data: small })]);
    const big = Buffer.alloc(MAX_CHUNK_OBJECT_BYTES + 1, 3);
    await expectClear('put: a chunk one byte past the chunk limit', c, S.putObject, [enc(PutObjectRequest, { folder: owner, kind: 1, id: sha(big), data: big })]);
    const huge = Buffer.alloc(MAX_OBJECT_BYTES + 1, 4);
    await expectClear('put: a manifest one byte past the object limit', c, S.putObject, [enc(PutObjectRequest, { folder: owner, kind: 2, id: sha(huge), data: huge })]);
    const past = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 5);
    await expectClear('put: a message past the gRPC limit', c, S.putObject, [enc(PutObjectRequest, { folder: owner, kind: 2, id: sha(past), data: past })]);
    await expectClear('has: 10,001 IDs', c, S.hasObjects, [enc(HasObjectsRequest, { folder: owner, kind: 1, ids: Array.from({ length: 10_001 }, (_, i) => id(String(i))) })]);
    await expectClear('get: unknown object', c, S.getObject, [enc(GetObjectRequest, { folder: owner, kind: 1, id: id('missing') })]);
    await expectClear('delete: unknown object (a success that deletes nothing)', c, S.deleteObject, [enc(DeleteObjectRequest, { folder: owner, kind: 1, id: id('missing') })], { ok: true });
    expectNoProblems();
  });

  it('CryptoService: bad folders, garbage wrapped keys and envelopes, oversize plaintext, bad fingerprints', async () => {
    const c = cryptoClient;
    const C = CryptoServiceService;
    const ctx = { folder: owner, fileId: Buffer.alloc(16, 1), index: 0, last: true };
    for (const f of BAD_FOLDERS) {
      await expectClear(`create data key bad folder ${JSON.stringify(f.slice(0, 12))}`, c, C.createDataKey, [enc(CreateDataKeyRequest, { folder: f })]);
      await expectClear('seal manifest bad folder', c, C.sealManifest, [enc(SealManifestRequest, { folder: f, plaintext: Buffer.from('{}') })]);
      await expectClear('open manifest bad folder', c, C.openManifest, [enc(OpenManifestRequest, { folder: f, ciphertext: Buffer.alloc(64) })]);
    }
    for (const w of [Buffer.alloc(0), Buffer.alloc(1), rng.bytes(60), rng.bytes(100_000)]) {
      await expectClear(`seal chunk with a wrapped key of ${w.length} garbage bytes`, c, C.sealChunk, [enc(SealChunkRequest, { wrappedKey: w, context: ctx, plaintext: Buffer.from('x') })]);
      await expectClear(`open chunk with a wrapped key of ${w.length} garbage bytes`, c, C.openChunk, [enc(OpenChunkRequest, { wrappedKey: w, context: ctx, ciphertext: rng.bytes(64) })]);
      await expectClear(`rewrap ${w.length} garbage bytes`, c, C.rewrapDataKey, [enc(RewrapDataKeyRequest, { folder: owner, wrappedKey: w })]);
      await expectClear(`open manifest of ${w.length} garbage bytes`, c, C.openManifest, [enc(OpenManifestRequest, { folder: owner, ciphertext: w })]);
    }
    // A real wrapped key, then bad contexts, envelopes and sizes around it.
    const dk = await new Promise<Buffer>((resolve, reject) =>
      cryptoClient.makeUnaryRequest(C.createDataKey.path, (b: Buffer) => b, C.createDataKey.responseDeserialize, enc(CreateDataKeyRequest, { folder: owner }), (err, v: any) => (err ? reject(err) : resolve(Buffer.from(v.wrappedKey)))),
    );
    await expectClear('seal chunk without a context', c, C.sealChunk, [enc(SealChunkRequest, { wrappedKey: dk, plaintext: Buffer.from('x') })]);
    await expectClear('seal chunk, file ID of 3 bytes', c, C.sealChunk, [enc(SealChunkRequest, { wrappedKey: dk, context: { ...ctx, fileId: Buffer.alloc(3) }, plaintext: Buffer.from('x') })]);
    await expectClear('seal chunk, context of another folder than the key', c, C.sealChunk, [enc(SealChunkRequest, { wrappedKey: dk, context: { ...ctx, folder: outsider.identity.serverId }, plaintext: Buffer.from('x') })]);
    // The service seals up to 4 MiB (MAX_SEAL_CHUNK_BYTES, for larger chunk sizes); one byte more is refused.
    await expectClear('seal chunk one byte past 4 MiB', c, C.sealChunk, [enc(SealChunkRequest, { wrappedKey: dk, context: ctx, plaintext: Buffer.alloc(4 * (1 << 20) + 1) })]);
    await expectClear('open chunk: garbage envelope', c, C.openChunk, [enc(OpenChunkRequest, { wrappedKey: dk, context: ctx, ciphertext: rng.bytes(100) })]);
    await expectClear('open chunk: empty envelope', c, C.openChunk, [enc(OpenChunkRequest, { wrappedKey: dk, context: ctx, ciphertext: Buffer.alloc(0) })]);
    await expectClear('rewrap for another folder', c, C.rewrapDataKey, [enc(RewrapDataKeyRequest, { folder: outsider.identity.serverId, wrappedKey: dk })]);
    await expectClear('seal manifest past the object limit', c, C.sealManifest, [enc(SealManifestRequest, { folder: owner, plaintext: Buffer.alloc(MAX_OBJECT_BYTES + 1) })]);
    for (const f of ['', 'zz', 'A'.repeat(16), '0'.repeat(16), 'a'.repeat(17), '../../x']) await expectClear(`retire fingerprint ${JSON.stringify(f)}`, c, C.retireVaultKey, [enc(RetireVaultKeyRequest, { fingerprint: f })]);
    expectNoProblems();
  });

  /** Opens a Handshake as `who`; resolves with the session token once Accepted (the stream stays open). */
  function joinAs(who: TestPeer): Promise<{ token: string; call: grpc.ClientDuplexStream<any, HandshakeResponse> }> {
    const { client, tls } = peerClient();
    const call = (client as unknown as PeerServiceClient).handshake();
    const hello: Hello = { protocolVersion: PROTOCOL_VERSION, serverId: who.identity.serverId, advertiseAddress: '127.0.0.1:1', knownPeers: [], publicKey: who.identity.publicKey, nonce: newNonce(), capabilities: [...CAPABILITIES] };
    return new Promise((resolve, reject) => {
      call.on('data', (msg: HandshakeResponse) => {
        const step = msg.step;
        if (step?.$case === 'welcome') {
          const w = step.value;
          const t = transcript(PROOF_CONTEXT, { dialer: hello, responder: { serverId: w.serverId, publicKey: w.publicKey, nonce: w.nonce, protocolVersion: w.protocolVersion, capabilities: w.capabilities }, certFingerprint: tls.peerFingerprint() ?? Buffer.alloc(0) });
          call.write({ step: { $case: 'proof', value: { signature: signTranscript(who.identity.privateKey, t), membershipProof: membershipProof(who.keys.networkSecret, t) } } });
        } else if (step?.$case === 'accepted') resolve({ token: step.value.sessionToken, call });
      });
      call.on('error', () => undefined);
      call.on('status', (st: grpc.StatusObject) => reject(new Error(`handshake ended: ${status[st.code]} ${st.details}`)));
      call.write({ step: { $case: 'hello', value: hello } });
    });
  }

  const hello = (p: Partial<Hello>) => enc(HandshakeRequest, { step: { $case: 'hello', value: { protocolVersion: PROTOCOL_VERSION, serverId: outsider.identity.serverId, advertiseAddress: '127.0.0.1:1', knownPeers: [], publicKey: outsider.identity.publicKey, nonce: newNonce(), capabilities: [...CAPABILITIES], ...p } } });

  it('PeerService as an outsider: garbage Hellos, steps out of order, data RPCs without a session', async () => {
    const { client } = peerClient();
    const P = PeerServiceService;
    for (const [n, h] of [
      ['bad server ID', { serverId: 'not-an-id' }],
      ['server ID with a bad check', { serverId: 'a'.repeat(32) }],
      ['empty public key', { publicKey: Buffer.alloc(0) }],
      ['31-byte public key', { publicKey: Buffer.alloc(31, 1) }],
      ['1000-byte public key', { publicKey: Buffer.alloc(1000, 1) }],
      ['empty nonce', { nonce: Buffer.alloc(0) }],
      ['huge nonce', { nonce: Buffer.alloc(1 << 20) }],
      ['protocol 0', { protocolVersion: 0 }],
      ['protocol 2^32-1', { protocolVersion: 2 ** 32 - 1 }],
      ['no capabilities', { capabilities: [] }],
      ['100,000 capabilities', { capabilities: Array.from({ length: 100_000 }, (_, i) => `c${i}`) }],
      ['garbage advertise address', { advertiseAddress: '\u0000:-1' }],
      ['garbage known peers', { knownPeers: [{ serverId: '../x', address: 'nowhere:99999' }] }],
      ['a well-formed outsider (no network secret)', {}],
    ] as const) {
      await expectClear(`hello: ${n}`, client, P.handshake, [hello(h as Partial<Hello>)]);
    }
    const step = (s: unknown) => enc(HandshakeRequest, { step: s });
    await expectClear('proof before hello', client, P.handshake, [step({ $case: 'proof', value: { signature: Buffer.alloc(64), membershipProof: Buffer.alloc(32) } })]);
    await expectClear('heartbeat before hello', client, P.handshake, [step({ $case: 'heartbeat', value: { sentUnixMs: 1, knownPeers: [], leaving: false } })]);
    await expectClear('message before hello', client, P.handshake, [step({ $case: 'message', value: { id: 'x', from: 'y', to: '', topic: 'fz', body: Buffer.from('x'), sentUnixMs: 1 } })]);
    await expectClear('empty step', client, P.handshake, [enc(HandshakeRequest, {})]);
    await expectClear('half-closed before hello', client, P.handshake, []);
    await expectClear('hello then half-close', client, P.handshake, [hello({})]);
    const open = enc(StoreChunkRequest, { step: { $case: 'open', value: { senderId: outsider.identity.serverId, folder: outsider.identity.serverId } } });
    const d = Buffer.from('outsider bytes');
    const obj = enc(StoreChunkRequest, { step: { $case: 'object', value: { kind: 1, id: sha(d), data: d } } });
    for (const [n, md] of [['no session', new grpc.Metadata()], ['a forged session', (() => { const m = new grpc.Metadata(); m.set(SESSION_METADATA_KEY, 'A'.repeat(43)); return m; })()], ['a garbage session', (() => { const m = new grpc.Metadata(); m.set(SESSION_METADATA_KEY, '~!'.repeat(4000)); return m; })()]] as const) {
      const s = await expectClear(`store with ${n}`, client, P.storeChunk, [open, obj], { md });
      const g = await expectClear(`get with ${n}`, client, P.getFile, [enc(GetFileRequest, { folder: owner, objects: [{ kind: 1, id: id('x') }] })], { md });
      const y = await expectClear(`sync with ${n}`, client, P.syncFolder, [enc(SyncFolderRequest, { step: { $case: 'open', value: { folder: owner } } })], { md });
      for (const r of [s, g, y]) if (r.code !== status.UNAUTHENTICATED || r.responses !== 0) problems.push(`[seed ${seed}] data RPC with ${n}: ${status[r.code]} after ${r.responses} responses`);
    }
    expectNoProblems();
  });

  it('PeerService as an authenticated member: StoreChunk, GetFile, SyncFolder and the control stream with bad steps', async () => {
    const { token, call } = await joinAs(member);
    try {
      const { client } = peerClient();
      const P = PeerServiceService;
      const md = () => {
        const m = new grpc.Metadata();
        m.set(SESSION_METADATA_KEY, token);
        return m;
      };
      const me = member.identity.serverId;
      const st = (s: unknown) => enc(StoreChunkRequest, { step: s });
      const open = (senderId: string, folder: string) => st({ $case: 'open', value: { senderId, folder } });
      const object = (kind: number, oid: string, data: Buffer) => st({ $case: 'object', value: { kind, id: oid, data } });
      const d = Buffer.from('member fuzz bytes');
      await expectClear('store: object before open', client, P.storeChunk, [object(1, sha(d), d)], { md: md() });
      await expectClear('store: two opens', client, P.storeChunk, [open(me, owner), open(me, owner), object(1, id('a'), d)], { md: md() });
      await expectClear('store: another sender_id', client, P.storeChunk, [open(owner, owner), object(1, sha(d), d)], { md: md() });
      for (const f of BAD_FOLDERS) await expectClear(`store: bad folder ${JSON.stringify(f.slice(0, 12))}`, client, P.storeChunk, [open(me, f), object(1, sha(d), d)], { md: md() });
      for (const k of [0, 3, 4, 99]) await expectClear(`store: kind ${k}`, client, P.storeChunk, [open(me, owner), object(k, sha(d), d)], { md: md() });
      for (const i of BAD_IDS) await expectClear(`store: bad id ${i.slice(0, 12)}`, client, P.storeChunk, [open(me, owner), object(1, i, d)], { md: md() });
      await expectClear('store: bytes do not match the ID', client, P.storeChunk, [open(me, owner), object(1, id('other'), d)], { md: md() });
      const big = Buffer.alloc(MAX_CHUNK_OBJECT_BYTES + 1, 6);
      await expectClear('store: a chunk one byte past the limit', client, P.storeChunk, [open(me, owner), object(1, sha(big), big)], { md: md() });
      const past = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 7);
      await expectClear('store: a frame past the gRPC limit', client, P.storeChunk, [open(me, owner), object(2, sha(past), past)], { md: md() });
      await expectClear('store: empty step', client, P.storeChunk, [open(me, owner), st(undefined)], { md: md() });
      await expectClear('store: open, then half-close (nothing sent: a clean end)', client, P.storeChunk, [open(me, owner)], { md: md(), ok: true });
      await expectClear('store: half-closed before open', client, P.storeChunk, [], { md: md() });
      const g = (p: unknown) => enc(GetFileRequest, p);
      for (const f of BAD_FOLDERS) await expectClear(`get: bad folder ${JSON.stringify(f.slice(0, 12))}`, client, P.getFile, [g({ folder: f, objects: [{ kind: 1, id: id('x') }] })], { md: md() });
      for (const i of BAD_IDS) await expectClear(`get: bad id ${i.slice(0, 12)}`, client, P.getFile, [g({ folder: owner, objects: [{ kind: 1, id: i }] })], { md: md() });
      for (const k of [0, 99]) await expectClear(`get: kind ${k}`, client, P.getFile, [g({ folder: owner, objects: [{ kind: k, id: id('x') }] })], { md: md() });
      // No cap on a batch: each object is looked up and answered "missing", about 2 ms each here (10,000 in
      // one message took 15-20+ s on this 2-core machine): a member can make a holder work long for one message.
      await expectClear('get: 1,000 unknown objects in one batch', client, P.getFile, [g({ folder: owner, objects: Array.from({ length: 1_000 }, (_, i) => ({ kind: 1, id: id(String(i)) })) })], { md: md(), ok: true });
      await expectClear('get: unknown object (answered "missing")', client, P.getFile, [g({ folder: owner, objects: [{ kind: 1, id: id('missing') }] })], { md: md(), ok: true });
      const y = (s: unknown) => enc(SyncFolderRequest, { step: s });
      await expectClear('sync: want before open', client, P.syncFolder, [y({ $case: 'want', value: { objects: [{ kind: 1, id: id('x') }] } })], { md: md() });
      await expectClear('sync: two opens', client, P.syncFolder, [y({ $case: 'open', value: { folder: owner } }), y({ $case: 'open', value: { folder: owner } })], { md: md() });
      for (const f of BAD_FOLDERS) await expectClear(`sync: bad folder ${JSON.stringify(f.slice(0, 12))}`, client, P.syncFolder, [y({ $case: 'open', value: { folder: f } })], { md: md() });
      for (const bits of [0, 3, 13, 99]) await expectClear(`sync: summary with prefix_bits ${bits}`, client, P.syncFolder, [y({ $case: 'open', value: { folder: owner, summary: { prefixBits: bits, buckets: [] } } })], { md: md() });
      await expectClear('sync: summary with duplicate buckets', client, P.syncFolder, [y({ $case: 'open', value: { folder: owner, summary: { prefixBits: 4, buckets: [{ kind: 1, prefix: 1, count: 1, digest: Buffer.alloc(32) }, { kind: 1, prefix: 1, count: 1, digest: Buffer.alloc(32) }] } } })], { md: md() });
      await expectClear('sync: bucket prefix out of range, short digest, negative count', client, P.syncFolder, [y({ $case: 'open', value: { folder: owner, summary: { prefixBits: 4, buckets: [{ kind: 9, prefix: 99, count: -5, digest: Buffer.alloc(3) }] } } })], { md: md() });
      await expectClear('sync: want with bad IDs after open', client, P.syncFolder, [y({ $case: 'open', value: { folder: owner } }), y({ $case: 'want', value: { objects: [{ kind: 0, id: '../x' }] } })], { md: md() });
      // The control stream: a second Hello, a Proof again, a message that lies about its sender, garbage peers.
      const h = (s: unknown) => call.write(HandshakeRequest.fromPartial({ step: s } as any));
      h({ $case: 'heartbeat', value: { sentUnixMs: -1, knownPeers: [{ serverId: '../x', address: 'nowhere:99999' }, { serverId: 'a'.repeat(32), address: '\u0000' }], leaving: false } });
      h({ $case: 'message', value: { id: 'zz', from: owner, to: '', topic: '-bad', body: Buffer.alloc(70_000), sentUnixMs: 1 } });
      await new Promise((r) => setTimeout(r, 500));
      const ended = new Promise<grpc.StatusObject>((r) => call.on('status', r));
      h({ $case: 'hello', value: { protocolVersion: PROTOCOL_VERSION, serverId: me, advertiseAddress: '', knownPeers: [], publicKey: member.identity.publicKey, nonce: newNonce(), capabilities: [...CAPABILITIES] } });
      const s = await Promise.race([ended, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
      // A second Hello on an authenticated control stream is a protocol error; ignoring it would be acceptable too.
      if (s && !CLEAR.has(s.code)) problems.push(`[seed ${seed}] control stream: second Hello -> ${status[s.code]} ${s.details}`);
    } finally {
      call.cancel();
    }
    expectNoProblems();
  });

  it(`${FRAMES} seeded random frames per RPC (mutated encodings and random bytes), sent raw: clear statuses`, async () => {
    const { token, call } = await joinAs(member);
    try {
      const sessionMd = () => {
        const m = new grpc.Metadata();
        m.set(SESSION_METADATA_KEY, token);
        return m;
      };
      const small = Buffer.from('fuzz object');
      const seeds: Record<string, Buffer[]> = {
        '/vault.node.v1.NodeService/UploadFile': [enc(UploadFileRequest, { step: { $case: 'header', value: { path: 'fz-raw/x', size: 3 } } }), enc(UploadFileRequest, { step: { $case: 'data', value: Buffer.from('abc') } })],
        '/vault.node.v1.NodeService/DownloadFile': [enc(DownloadFileRequest, { path: 'fz-raw/x', version: 2 })],
        '/vault.node.v1.NodeService/DeleteFile': [enc(DeleteFileRequest, { path: 'fz-raw/x' })],
        '/vault.node.v1.NodeService/SendMessage': [enc(SendMessageRequest, { to: 'x', topic: '-', body: Buffer.from('x') })],
        '/vault.storage.v1.StorageService/PutObject': [enc(PutObjectRequest, { folder: owner, kind: 1, id: id('z'), data: small })],
        '/vault.storage.v1.StorageService/Objects': [
          enc(ObjectsRequest, { seq: 1, op: { $case: 'put', value: { folder: owner, kind: 1, id: id('z'), data: small } } }),
          enc(ObjectsRequest, { seq: 2, op: { $case: 'get', value: { folder: owner, kind: 1, id: id('missing') } } }),
        ],
        '/vault.storage.v1.StorageService/DeleteObject': [enc(DeleteObjectRequest, { folder: owner, kind: 1, id: id('missing') })],
        '/vault.crypto.v1.CryptoService/SealChunk': [enc(SealChunkRequest, { wrappedKey: Buffer.alloc(60), context: { folder: owner, fileId: Buffer.alloc(16), index: 0, last: true }, plaintext: small })],
        '/vault.peer.v1.PeerService/Handshake': [hello({})],
        '/vault.peer.v1.PeerService/StoreChunk': [enc(StoreChunkRequest, { step: { $case: 'open', value: { senderId: member.identity.serverId, folder: owner } } }), enc(StoreChunkRequest, { step: { $case: 'object', value: { kind: 1, id: id('y'), data: small } } })],
        '/vault.peer.v1.PeerService/GetFile': [enc(GetFileRequest, { folder: owner, objects: [{ kind: 1, id: id('x') }] })],
        '/vault.peer.v1.PeerService/SyncFolder': [enc(SyncFolderRequest, { step: { $case: 'open', value: { folder: owner, summary: { prefixBits: 4, buckets: [] } } } })],
      };
      const skip = new Set(['RotateVaultKey', 'StartRecovery', 'RecoverFolder']);
      const services: [string, Record<string, MethodDef & { originalName?: string }>, () => grpc.Client, (() => grpc.Metadata) | undefined][] = [
        ['node', NodeServiceService as any, () => nodeClient, undefined],
        ['storage', StorageServiceService as any, () => storageClient, undefined],
        ['crypto', CryptoServiceService as any, () => cryptoClient, undefined],
        ['peer (member)', PeerServiceService as any, () => peerClient().client, sessionMd],
        ['peer (outsider)', PeerServiceService as any, () => peerClient().client, undefined],
      ];
      for (const [svc, defs, mk, md] of services) {
        const client = mk();
        for (const def of Object.values(defs)) {
          const name = def.path.slice(def.path.lastIndexOf('/') + 1);
          if (skip.has(name)) continue;
          const frames = randomFrames(seeds[def.path] ?? [Buffer.alloc(0)]);
          if (def.requestStream) {
            // Several frames on one stream; an upload is cancelled instead of ended (a random header plus
            // an end could be a legal empty upload, which writes).
            const upload = name === 'UploadFile';
            for (let i = 0; i < frames.length; i += 2) await expectClear(`${svc} random frames #${i}`, client, def, frames.slice(i, i + 2), { md: md?.(), raw: true, end: upload ? 'cancel' : 'end' });
          } else {
            for (const [i, f] of frames.entries()) await expectClear(`${svc} random frame #${i}`, client, def, [f], { md: md?.(), raw: true });
          }
        }
      }
    } finally {
      call.cancel();
    }
    console.log(`gRPC fuzz: ${calls} calls (seed ${seed}); ${undecodable} frames did not decode as protobuf (INVALID_ARGUMENT)`);
    expectNoProblems();
  });

  it('afterwards: every process alive, nothing stored, the known file intact', async () => {
    for (const p of networkProcs(net)) expect([p.name, p.running]).toEqual([p.name, true]);
    let after: unknown;
    try {
      await eventually(async () => JSON.stringify((after = await state())) === JSON.stringify(before), 15_000, 'state settled');
    } catch {
      /* compared below */
    }
    expect(after).toEqual(before);
    // Chunks are compared above: the ones refused uploads had stored were collected. At most one GC record
    // per such upload (size lies and cancels), on each of the 2 nodes.
    expect(gcRecords - gcRecordsBefore).toBeLessThanOrEqual(2 * 4);
    console.log(`gRPC fuzz: ${gcRecords - gcRecordsBefore} GC record files written for the chunks of refused uploads (both nodes)`);
    const bytes: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = nodeClient.makeServerStreamRequest(NodeServiceService.downloadFile.path, (b: Buffer) => b, NodeServiceService.downloadFile.responseDeserialize, enc(DownloadFileRequest, { path: KNOWN }));
      s.on('data', (m: any) => m.step?.$case === 'data' && bytes.push(Buffer.from(m.step.value)));
      s.on('error', reject);
      s.on('end', () => resolve());
    });
    expect(sha(Buffer.concat(bytes))).toBe(knownSha);
  });
});
