/**
 * The bulk-message codecs against ts-proto's generated codec: each direction decodes what the other
 * encodes, for small payloads (fallback path), large ones (hand path) and every other oneof case.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ObjectKind } from '../generated/vault/common/v1/object';
import * as cryptoPb from '../generated/vault/crypto/v1/crypto';
import * as nodePb from '../generated/vault/node/v1/node';
import * as peerPb from '../generated/vault/peer/v1/peer';
import * as storagePb from '../generated/vault/storage/v1/storage';
import { BULK_CODECS, BULK_MIN_BYTES, withBulkCodecs } from './codec';

interface Generated {
  encode(m: unknown): { finish(): Uint8Array };
  decode(b: Uint8Array): unknown;
}

const id = 'a'.repeat(64);
const ctx = { folder: 'f'.repeat(52), fileId: randomBytes(16), index: 300, last: true };
// Around the fallback threshold, and large (a 1 MiB chunk plus envelope; a length needing 3 varint bytes).
const SIZES = [0, 1, BULK_MIN_BYTES - 1, BULK_MIN_BYTES, 1024 * 1024 + 40];

/** Sample messages per method side, as a function of the payload. */
const SAMPLES: Record<string, { type: Generated; make: (data: Buffer) => unknown[] }> = {
  '/vault.storage.v1.StorageService/PutObject request': {
    type: storagePb.PutObjectRequest,
    make: (data) => [{ folder: 'f'.repeat(52), kind: ObjectKind.OBJECT_KIND_CHUNK, id, data }],
  },
  '/vault.storage.v1.StorageService/GetObject response': { type: storagePb.GetObjectResponse, make: (data) => [{ data }] },
  '/vault.storage.v1.StorageService/Objects request': {
    type: storagePb.ObjectsRequest,
    make: (data) => [
      { seq: 5, op: { $case: 'put', value: { folder: 'f'.repeat(52), kind: ObjectKind.OBJECT_KIND_CHUNK, id, data } } },
      { seq: 0xffffffff, op: { $case: 'get', value: { folder: 'f'.repeat(52), kind: ObjectKind.OBJECT_KIND_MANIFEST, id } } },
      { seq: 0, op: { $case: 'put', value: { folder: 'f'.repeat(52), kind: ObjectKind.OBJECT_KIND_GC_RECORD, id, data } } },
      { seq: 3 },
    ],
  },
  '/vault.storage.v1.StorageService/Objects response': {
    type: storagePb.ObjectsResponse,
    make: (data) => [
      { seq: 1, result: { $case: 'get', value: { data } } },
      { seq: 2 ** 31, result: { $case: 'put', value: { created: true } } },
      { seq: 0, result: { $case: 'get', value: { data } } },
      { seq: 9, result: { $case: 'error', value: { code: 5, message: 'not found' } } },
    ],
  },
  '/vault.crypto.v1.CryptoService/SealChunk request': { type: cryptoPb.SealChunkRequest, make: (data) => [{ wrappedKey: randomBytes(60), context: ctx, plaintext: data }] },
  '/vault.crypto.v1.CryptoService/SealChunk response': { type: cryptoPb.SealChunkResponse, make: (data) => [{ ciphertext: data, id }] },
  '/vault.crypto.v1.CryptoService/OpenChunk request': { type: cryptoPb.OpenChunkRequest, make: (data) => [{ wrappedKey: randomBytes(60), context: ctx, ciphertext: data }] },
  '/vault.crypto.v1.CryptoService/OpenChunk response': { type: cryptoPb.OpenChunkResponse, make: (data) => [{ plaintext: data }] },
  '/vault.crypto.v1.CryptoService/Chunks request': {
    type: cryptoPb.ChunksRequest,
    make: (data) => [
      { seq: 7, op: { $case: 'seal', value: { wrappedKey: randomBytes(60), context: ctx, plaintext: data } } },
      { seq: 0xffffffff, op: { $case: 'open', value: { wrappedKey: randomBytes(60), context: ctx, ciphertext: data } } },
      { seq: 0, op: { $case: 'seal', value: { wrappedKey: randomBytes(60), context: ctx, plaintext: data } } },
      { seq: 3 },
      { seq: 4, op: { $case: 'sealManifest', value: { folder: 'x', plaintext: data } } },
      { seq: 5, op: { $case: 'openManifest', value: { folder: 'x', ciphertext: data } } },
      { seq: 6, op: { $case: 'createDataKey', value: { folder: 'x' } } },
    ],
  },
  '/vault.crypto.v1.CryptoService/Chunks response': {
    type: cryptoPb.ChunksResponse,
    make: (data) => [
      { seq: 1, result: { $case: 'sealed', value: { ciphertext: data, id } } },
      { seq: 2 ** 31, result: { $case: 'opened', value: { plaintext: data } } },
      { seq: 0, result: { $case: 'opened', value: { plaintext: data } } },
      { seq: 9, result: { $case: 'error', value: { code: 15, message: 'tampered' } } },
      { seq: 10, result: { $case: 'sealedManifest', value: { ciphertext: data, id } } },
      { seq: 11, result: { $case: 'openedManifest', value: { plaintext: data } } },
      { seq: 12, result: { $case: 'dataKey', value: { wrappedKey: data } } },
    ],
  },
  '/vault.crypto.v1.CryptoService/SealManifest request': { type: cryptoPb.SealManifestRequest, make: (data) => [{ folder: 'x', plaintext: data }] },
  '/vault.crypto.v1.CryptoService/SealManifest response': { type: cryptoPb.SealManifestResponse, make: (data) => [{ ciphertext: data, id }] },
  '/vault.crypto.v1.CryptoService/OpenManifest request': { type: cryptoPb.OpenManifestRequest, make: (data) => [{ folder: 'x', ciphertext: data }] },
  '/vault.crypto.v1.CryptoService/OpenManifest response': { type: cryptoPb.OpenManifestResponse, make: (data) => [{ plaintext: data }] },
  '/vault.node.v1.NodeService/UploadFile request': {
    type: nodePb.UploadFileRequest,
    make: (data) => [{ step: { $case: 'data', value: data } }, { step: { $case: 'header', value: { path: 'a/b.bin', size: 2 ** 40 } } }, {}],
  },
  '/vault.node.v1.NodeService/DownloadFile response': {
    type: nodePb.DownloadFileResponse,
    make: (data) => [
      { step: { $case: 'data', value: data } },
      { step: { $case: 'header', value: { path: 'p', version: 3, size: 2 ** 33, sha256: id, updatedUnixMs: 1, chunks: 9 } } },
    ],
  },
  '/vault.peer.v1.PeerService/StoreChunk request': {
    type: peerPb.StoreChunkRequest,
    make: (data) => [
      { step: { $case: 'object', value: { kind: ObjectKind.OBJECT_KIND_MANIFEST, id, data } } },
      { step: { $case: 'open', value: { senderId: 's', folder: 'f' } } },
    ],
  },
  '/vault.peer.v1.PeerService/GetFile response': {
    type: peerPb.GetFileResponse,
    make: (data) => [{ step: { $case: 'object', value: { kind: ObjectKind.OBJECT_KIND_CHUNK, id, data } } }, { step: { $case: 'missing', value: { kind: 1, id } } }],
  },
  '/vault.peer.v1.PeerService/SyncFolder response': {
    type: peerPb.SyncFolderResponse,
    make: (data) => [
      { step: { $case: 'object', value: { kind: ObjectKind.OBJECT_KIND_CHUNK, id, data } } },
      { step: { $case: 'inventory', value: { objects: [{ kind: 1, id }] } } },
      { step: { $case: 'inventoryEnd', value: { objects: 5 } } },
    ],
  },
};

/** Byte fields as type, length and digest: Jest's deep equality walks a 1 MiB Buffer byte by byte. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return `${v.constructor.name}:${v.length}:${createHash('sha256').update(v).digest('hex')}`;
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}

const sides = Object.entries(BULK_CODECS).flatMap(([path, c]) => [
  ...(c.request ? [[`${path} request`, c.request] as const] : []),
  ...(c.response ? [[`${path} response`, c.response] as const] : []),
]);

describe('bulk codecs', () => {
  it('has a sample for every codec in the table', () => {
    expect(sides.map(([k]) => k).sort()).toEqual(Object.keys(SAMPLES).sort());
  });

  describe.each(sides)('%s', (key, codec) => {
    const { type, make } = SAMPLES[key]!;
    it.each(SIZES)('round-trips with ts-proto in both directions (payload %d bytes)', (size) => {
      for (const msg of make(randomBytes(size))) {
        const reference = norm(type.decode(type.encode(msg).finish()));
        const ours = codec.encode(msg);
        expect(Buffer.isBuffer(ours)).toBe(true);
        // ts-proto reads what we write, and we read what ts-proto writes.
        expect(norm(type.decode(ours))).toEqual(reference);
        expect(norm(codec.decode(Buffer.from(type.encode(msg).finish())))).toEqual(reference);
        expect(norm(codec.decode(ours))).toEqual(reference);
        // Same length as ts-proto's encoding: only the order of fields may differ.
        expect(ours.length).toBe(type.encode(msg).finish().length);
      }
    });
  });

  it('decodes a large payload as a view of the received buffer, without copying it', () => {
    const data = randomBytes(1024 * 1024);
    const { request } = BULK_CODECS['/vault.storage.v1.StorageService/PutObject']!;
    const wire = request!.encode({ folder: 'f', kind: 1, id, data });
    const back = request!.decode(wire) as storagePb.PutObjectRequest;
    expect(back.data.buffer).toBe(wire.buffer);
    expect(back.data.equals(data)).toBe(true);
  });

  it('leaves a repeated bulk field to the generated decoder (last one wins)', () => {
    const a = Buffer.from(storagePb.GetObjectResponse.encode({ data: randomBytes(BULK_MIN_BYTES) }).finish());
    const b = Buffer.from(storagePb.GetObjectResponse.encode({ data: randomBytes(BULK_MIN_BYTES + 1) }).finish());
    const { response } = BULK_CODECS['/vault.storage.v1.StorageService/GetObject']!;
    expect(response!.decode(Buffer.concat([a, b]))).toEqual(storagePb.GetObjectResponse.decode(Buffer.concat([a, b])));
  });

  it('rejects truncated input like the generated decoder', () => {
    const wire = BULK_CODECS['/vault.crypto.v1.CryptoService/SealChunk']!.request!.encode({ wrappedKey: randomBytes(60), context: ctx, plaintext: randomBytes(BULK_MIN_BYTES * 2) });
    const cut = wire.subarray(0, wire.length - 10);
    expect(() => cryptoPb.SealChunkRequest.decode(cut)).toThrow();
    expect(() => BULK_CODECS['/vault.crypto.v1.CryptoService/SealChunk']!.request!.decode(cut)).toThrow();
  });

  it('patches service definitions only where a method carries bulk bytes', () => {
    const def = withBulkCodecs(storagePb.StorageServiceService);
    expect(def).not.toBe(storagePb.StorageServiceService);
    expect(def.putObject.requestSerialize).not.toBe(storagePb.StorageServiceService.putObject.requestSerialize);
    expect(def.putObject.responseSerialize).toBe(storagePb.StorageServiceService.putObject.responseSerialize);
    expect(def.listFolders).toBe(storagePb.StorageServiceService.listFolders);
    expect(withBulkCodecs(storagePb.StorageServiceService)).toBe(def);
    // A definition without bulk methods comes back as it is.
    const plain: grpc.ServiceDefinition = { listFolders: storagePb.StorageServiceService.listFolders };
    expect(withBulkCodecs(plain)).toBe(plain);
  });
});
