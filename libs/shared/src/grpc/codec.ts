/**
 * Cheaper (de)serialization of the messages that carry chunk bytes, wire-compatible with the .proto.
 *
 * ts-proto's generated codec copies a 1 MiB payload four to five times per message: the @bufbuild
 * BinaryWriter grows a zero-filled buffer by doubling (to 2 MiB), `finish()` slices it, the generated
 * `requestSerialize` copies it again with `Buffer.from`, and on the way in `decode` copies the payload
 * out of the received buffer with `Buffer.from`. At 1 MiB per message that churn (and the GC it causes)
 * was most of the CPU of the upload path. Here a bulk message is encoded into one exactly-sized
 * `Buffer.allocUnsafe` and decoded without copying its payload: the payload is a `subarray` of the
 * buffer grpc-js hands over, which is freshly allocated per message and never reused by grpc-js.
 *
 * Only the bulk field is handled by hand; every other field still goes through the generated codec:
 * - encode: the generated encoder writes the message with the bulk field left empty (proto3 omits an
 *   empty `bytes` field), and the bulk field is appended after it. Protobuf parsers accept fields in any
 *   order, so the bytes differ from ts-proto's only in field order (identical when the bulk field has the
 *   highest number).
 * - decode: one pass over the top-level tags finds the bulk field; the rest goes to the generated
 *   decoder (without a copy when the bulk field is last, as this encoder and ts-proto mostly put it).
 * Small payloads (below BULK_MIN_BYTES) and unusual inputs (a repeated bulk field, a oneof frame with
 * other fields) fall back to the generated codec, so the semantics stay exactly the generated ones.
 *
 * `withBulkCodecs` applies the table below to a ts-proto `...Service` definition; `createClient` and
 * `startGrpcServer` do this for every client and server of the project.
 */
import type * as grpc from '@grpc/grpc-js';
import { ObjectFrame } from '../generated/vault/common/v1/object';
import { ChunksRequest, ChunksResponse, OpenChunkRequest, OpenChunkResponse, OpenManifestRequest, OpenManifestResponse, SealChunkRequest, SealChunkResponse, SealManifestRequest, SealManifestResponse } from '../generated/vault/crypto/v1/crypto';
import { DownloadFileResponse, UploadFileRequest } from '../generated/vault/node/v1/node';
import { GetFileResponse, StoreChunkRequest, SyncFolderResponse } from '../generated/vault/peer/v1/peer';
import { GetObjectResponse, ObjectsRequest, ObjectsResponse, PutObjectRequest } from '../generated/vault/storage/v1/storage';

/** Payloads smaller than this take the generated codec: copies are cheap there and it is the reference. */
export const BULK_MIN_BYTES = 4096;

const WT_LEN = 2;

/** The generated message functions this module needs. */
interface Generated<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/** A Buffer view of the generated encoder's output (no copy: `finish()` already returned a fresh slice). */
function generatedEncode<T>(m: Generated<T>, msg: T): Buffer {
  const u8 = m.encode(msg).finish();
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}

/** One top-level field's position in an encoded message. */
interface FieldSpan {
  /** Where its tag starts. */
  start: number;
  /** Where its value (after the length prefix, for LEN fields) starts. */
  valueStart: number;
  /** Where it ends. */
  end: number;
  fieldNo: number;
  wireType: number;
}

/** Reads a varint at `pos`; returns [value, next position], or undefined when truncated or too long. */
function readVarint(buf: Uint8Array, pos: number): [number, number] | undefined {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) return undefined;
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    if (b < 0x80) return [value, pos];
    mul *= 128;
  }
  return undefined;
}

/**
 * The top-level fields of an encoded message, or undefined when it is not plainly parseable (groups,
 * truncation): the caller then leaves it to the generated decoder, which raises the proper error.
 */
function scanFields(buf: Uint8Array): FieldSpan[] | undefined {
  const fields: FieldSpan[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const tag = readVarint(buf, pos);
    if (!tag) return undefined;
    pos = tag[1];
    const fieldNo = Math.floor(tag[0] / 8);
    const wireType = tag[0] & 7;
    let valueStart = pos;
    switch (wireType) {
      case 0: {
        const v = readVarint(buf, pos);
        if (!v) return undefined;
        pos = v[1];
        break;
      }
      case 1:
        pos += 8;
        break;
      case 5:
        pos += 4;
        break;
      case WT_LEN: {
        const len = readVarint(buf, pos);
        if (!len) return undefined;
        valueStart = len[1];
        pos = valueStart + len[0];
        break;
      }
      default:
        return undefined;
    }
    if (pos > buf.length || fieldNo === 0) return undefined;
    fields.push({ start, valueStart, end: pos, fieldNo, wireType });
  }
  return fields;
}

/** Encoder and decoder of one message type. */
export interface MessageCodec<T> {
  encode(msg: T): Buffer;
  decode(buf: Buffer): T;
}

/** An encoding prepared in two steps, so a wrapper can write it inside its own buffer without a copy. */
interface Planned {
  /** Encoded size in bytes. */
  size: number;
  /** Writes the encoding at `pos` of `out`; returns the position after it. */
  writeInto(out: Buffer, pos: number): number;
}

/**
 * Codec of a message with one top-level `bytes` field (number `fieldNo`, property `field`) that carries
 * the bulk payload.
 */
class TopLevelBulk<T extends object> implements MessageCodec<T> {
  private readonly tagByte: number;
  constructor(
    private readonly m: Generated<T>,
    private readonly field: keyof T & string,
    private readonly fieldNo: number,
  ) {
    if (fieldNo >= 16) throw new Error('TopLevelBulk supports field numbers below 16 (one tag byte)');
    this.tagByte = (fieldNo << 3) | WT_LEN;
  }

  /** Undefined when the payload is small: the generated codec is used then. */
  plan(msg: T): Planned | undefined {
    const data = msg[this.field] as unknown as Uint8Array | undefined;
    if (!data || data.length < BULK_MIN_BYTES) return undefined;
    const head = this.m.encode({ ...msg, [this.field]: EMPTY }).finish();
    const size = head.length + 1 + varintSize(data.length) + data.length;
    return {
      size,
      writeInto: (out, pos) => {
        out.set(head, pos);
        pos += head.length;
        out[pos++] = this.tagByte;
        pos = writeVarint(out, pos, data.length);
        out.set(data, pos);
        return pos + data.length;
      },
    };
  }

  encode(msg: T): Buffer {
    const p = this.plan(msg);
    if (!p) return generatedEncode(this.m, msg);
    const out = Buffer.allocUnsafe(p.size);
    p.writeInto(out, 0);
    return out;
  }

  decode(buf: Buffer): T {
    if (buf.length < BULK_MIN_BYTES) return this.m.decode(buf);
    const fields = scanFields(buf);
    const bulk = fields?.filter((f) => f.fieldNo === this.fieldNo);
    // Absent, repeated (last one wins: leave that to the generated decoder), or a wrong wire type.
    if (!bulk || bulk.length !== 1 || bulk[0]!.wireType !== WT_LEN) return this.m.decode(buf);
    const f = bulk[0]!;
    const rest = f.end === buf.length ? buf.subarray(0, f.start) : Buffer.concat([buf.subarray(0, f.start), buf.subarray(f.end)]);
    const msg = this.m.decode(rest);
    (msg as Record<string, unknown>)[this.field] = buf.subarray(f.valueStart, f.end);
    return msg;
  }
}

const EMPTY = Buffer.alloc(0);

/** The value of a oneof case: either raw bytes, or a message with its own bulk codec. */
type CaseValue = { kind: 'bytes' } | { kind: 'message'; codec: TopLevelBulk<any> };

/**
 * Codec of a message whose `step` oneof has one case carrying the bulk payload (`$case` = `caseName`,
 * field `fieldNo`): raw bytes (UploadFileRequest.data) or a message with a bulk field (ObjectFrame).
 * Every other case, and any input that is not exactly that one field, takes the generated codec.
 */
class OneofBulk<T extends { step?: { $case: string; value: unknown } }> implements MessageCodec<T> {
  private readonly tagByte: number;
  constructor(
    private readonly m: Generated<T>,
    private readonly caseName: string,
    private readonly fieldNo: number,
    private readonly value: CaseValue,
  ) {
    if (fieldNo >= 16) throw new Error('OneofBulk supports field numbers below 16 (one tag byte)');
    this.tagByte = (fieldNo << 3) | WT_LEN;
  }

  encode(msg: T): Buffer {
    const step = msg.step;
    if (step?.$case !== this.caseName) return generatedEncode(this.m, msg);
    let size: number;
    let writeInto: (out: Buffer, pos: number) => number;
    if (this.value.kind === 'bytes') {
      const data = step.value as Uint8Array;
      if (data.length < BULK_MIN_BYTES) return generatedEncode(this.m, msg);
      size = data.length;
      writeInto = (out, pos) => {
        out.set(data, pos);
        return pos + data.length;
      };
    } else {
      const p = this.value.codec.plan(step.value as object);
      if (!p) return generatedEncode(this.m, msg);
      ({ size, writeInto } = p);
    }
    const out = Buffer.allocUnsafe(1 + varintSize(size) + size);
    out[0] = this.tagByte;
    writeInto(out, writeVarint(out, 1, size));
    return out;
  }

  decode(buf: Buffer): T {
    if (buf.length < BULK_MIN_BYTES) return this.m.decode(buf);
    const fields = scanFields(buf);
    if (!fields || fields.length !== 1 || fields[0]!.fieldNo !== this.fieldNo || fields[0]!.wireType !== WT_LEN) return this.m.decode(buf);
    const inner = buf.subarray(fields[0]!.valueStart, fields[0]!.end);
    const value = this.value.kind === 'bytes' ? inner : this.value.codec.decode(inner);
    return { step: { $case: this.caseName, value } } as T;
  }
}

/**
 * Codec of a message made of a `seq` (uint32, field 1) and a oneof (property `oneof`) whose cases listed
 * here are messages with a bulk field (CryptoService.Chunks, StorageService.Objects). Exactly that shape — at most one seq and one
 * listed case, nothing else — takes the hand path; anything else takes the generated codec.
 */
class SeqOneofBulk<T extends { seq: number }> implements MessageCodec<T> {
  constructor(
    private readonly m: Generated<T>,
    private readonly oneof: string,
    private readonly cases: { caseName: string; fieldNo: number; codec: TopLevelBulk<any> }[],
  ) {
    for (const c of cases) if (c.fieldNo >= 16 || c.fieldNo === 1) throw new Error('SeqOneofBulk: case field numbers 2..15');
  }

  encode(msg: T): Buffer {
    const o = (msg as Record<string, unknown>)[this.oneof] as { $case: string; value: object } | undefined;
    const c = o && this.cases.find((x) => x.caseName === o.$case);
    const p = c?.codec.plan(o!.value);
    if (!c || !p) return generatedEncode(this.m, msg);
    const seqSize = msg.seq ? 1 + varintSize(msg.seq) : 0;
    const out = Buffer.allocUnsafe(seqSize + 1 + varintSize(p.size) + p.size);
    let pos = 0;
    if (msg.seq) {
      out[pos++] = (1 << 3) | 0;
      pos = writeVarint(out, pos, msg.seq);
    }
    out[pos++] = (c.fieldNo << 3) | WT_LEN;
    p.writeInto(out, writeVarint(out, pos, p.size));
    return out;
  }

  decode(buf: Buffer): T {
    if (buf.length < BULK_MIN_BYTES) return this.m.decode(buf);
    const fields = scanFields(buf);
    if (!fields || fields.length === 0 || fields.length > 2) return this.m.decode(buf);
    const seqF = fields.length === 2 ? fields[0]! : undefined;
    const body = fields[fields.length - 1]!;
    const c = this.cases.find((x) => x.fieldNo === body.fieldNo);
    if (!c || body.wireType !== WT_LEN || (seqF && (seqF.fieldNo !== 1 || seqF.wireType !== 0))) return this.m.decode(buf);
    const seq = seqF ? readVarint(buf, seqF.valueStart)![0] : 0;
    if (seq > 0xffffffff) return this.m.decode(buf); // the generated decoder's uint32 truncation
    const value = c.codec.decode(buf.subarray(body.valueStart, body.end));
    return { seq, [this.oneof]: { $case: c.caseName, value } } as unknown as T;
  }
}

const objectFrame = new TopLevelBulk(ObjectFrame, 'data', 3);
const putObjectRequest = new TopLevelBulk(PutObjectRequest, 'data', 4);
const getObjectResponse = new TopLevelBulk(GetObjectResponse, 'data', 1);
const sealChunkRequest = new TopLevelBulk(SealChunkRequest, 'plaintext', 3);
const sealChunkResponse = new TopLevelBulk(SealChunkResponse, 'ciphertext', 1);
const openChunkRequest = new TopLevelBulk(OpenChunkRequest, 'ciphertext', 3);
const openChunkResponse = new TopLevelBulk(OpenChunkResponse, 'plaintext', 1);
const sealManifestRequest = new TopLevelBulk(SealManifestRequest, 'plaintext', 2);
const sealManifestResponse = new TopLevelBulk(SealManifestResponse, 'ciphertext', 1);
const openManifestRequest = new TopLevelBulk(OpenManifestRequest, 'ciphertext', 2);
const openManifestResponse = new TopLevelBulk(OpenManifestResponse, 'plaintext', 1);

/**
 * Codecs by full method path: which side of each method carries bulk bytes. Everything else keeps the
 * generated codec. Adding a method here needs a round-trip case in codec.spec.ts.
 */
export const BULK_CODECS: Record<string, { request?: MessageCodec<any>; response?: MessageCodec<any> }> = {
  '/vault.storage.v1.StorageService/PutObject': { request: putObjectRequest },
  '/vault.storage.v1.StorageService/GetObject': { response: getObjectResponse },
  '/vault.storage.v1.StorageService/Objects': {
    request: new SeqOneofBulk(ObjectsRequest, 'op', [{ caseName: 'put', fieldNo: 2, codec: putObjectRequest }]),
    response: new SeqOneofBulk(ObjectsResponse, 'result', [{ caseName: 'get', fieldNo: 3, codec: getObjectResponse }]),
  },
  '/vault.crypto.v1.CryptoService/SealChunk': { request: sealChunkRequest, response: sealChunkResponse },
  '/vault.crypto.v1.CryptoService/OpenChunk': { request: openChunkRequest, response: openChunkResponse },
  '/vault.crypto.v1.CryptoService/Chunks': {
    request: new SeqOneofBulk(ChunksRequest, 'op', [
      { caseName: 'seal', fieldNo: 2, codec: sealChunkRequest },
      { caseName: 'open', fieldNo: 3, codec: openChunkRequest },
      { caseName: 'sealManifest', fieldNo: 5, codec: sealManifestRequest },
      { caseName: 'openManifest', fieldNo: 6, codec: openManifestRequest },
    ]),
    response: new SeqOneofBulk(ChunksResponse, 'result', [
      { caseName: 'sealed', fieldNo: 2, codec: sealChunkResponse },
      { caseName: 'opened', fieldNo: 3, codec: openChunkResponse },
      { caseName: 'sealedManifest', fieldNo: 6, codec: sealManifestResponse },
      { caseName: 'openedManifest', fieldNo: 7, codec: openManifestResponse },
    ]),
  },
  '/vault.crypto.v1.CryptoService/SealManifest': { request: sealManifestRequest, response: sealManifestResponse },
  '/vault.crypto.v1.CryptoService/OpenManifest': { request: openManifestRequest, response: openManifestResponse },
  '/vault.node.v1.NodeService/UploadFile': { request: new OneofBulk(UploadFileRequest, 'data', 2, { kind: 'bytes' }) },
  '/vault.node.v1.NodeService/DownloadFile': { response: new OneofBulk(DownloadFileResponse, 'data', 2, { kind: 'bytes' }) },
  '/vault.peer.v1.PeerService/StoreChunk': { request: new OneofBulk(StoreChunkRequest, 'object', 2, { kind: 'message', codec: objectFrame }) },
  '/vault.peer.v1.PeerService/GetFile': { response: new OneofBulk(GetFileResponse, 'object', 1, { kind: 'message', codec: objectFrame }) },
  '/vault.peer.v1.PeerService/SyncFolder': { response: new OneofBulk(SyncFolderResponse, 'object', 3, { kind: 'message', codec: objectFrame }) },
};

const patched = new WeakMap<object, grpc.ServiceDefinition>();

/**
 * A copy of a ts-proto `...Service` definition whose bulk methods use the codecs above (the input is
 * returned unchanged when none of its methods carries bulk bytes). Cached per definition.
 */
export function withBulkCodecs<D extends grpc.ServiceDefinition>(def: D): D {
  const cached = patched.get(def);
  if (cached) return cached as D;
  let changed = false;
  const out: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const [name, method] of Object.entries(def)) {
    const codecs = BULK_CODECS[method.path];
    if (!codecs) {
      out[name] = method;
      continue;
    }
    changed = true;
    out[name] = {
      ...method,
      ...(codecs.request && { requestSerialize: (v: unknown) => codecs.request!.encode(v), requestDeserialize: (b: Buffer) => codecs.request!.decode(b) }),
      ...(codecs.response && { responseSerialize: (v: unknown) => codecs.response!.encode(v), responseDeserialize: (b: Buffer) => codecs.response!.decode(b) }),
    };
  }
  const result = (changed ? out : def) as D;
  patched.set(def, result);
  return result;
}
