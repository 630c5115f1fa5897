/**
 * Proto contract tests: the wire contract between every pair of processes.
 *
 * Two independent encoders meet on the wire: ts-proto (the generated code the apps use) and
 * @grpc/proto-loader (protobufjs, what a client such as grpcurl-like tooling or a peer built from the
 * .proto files would use). These tests pin the services' methods and streaming kinds, snapshot every
 * field number and type (so a renumbering shows up in review), and push messages through both encoders
 * in both directions. They also fail when the committed generated code or descriptors drift from proto/.
 */
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import * as protoLoader from '@grpc/proto-loader';
import { createFileRegistry, fromBinary, ScalarType, type DescField, type DescMessage, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { DESCRIPTOR_SET_BASE64 } from './generated/descriptors';
import * as commonPb from './generated/vault/common/v1/object';
import * as cryptoPb from './generated/vault/crypto/v1/crypto';
import * as nodePb from './generated/vault/node/v1/node';
import * as peerPb from './generated/vault/peer/v1/peer';
import * as storagePb from './generated/vault/storage/v1/storage';

const run = promisify(execFile);
const ROOT = join(__dirname, '../../..');
const PROTO_DIR = join(ROOT, 'proto');
const BUF = join(ROOT, 'node_modules/.bin/buf');

/** The loader options every proto-loader user of the project must use (int64 as numbers, enums as names). */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...protoFiles(p));
    else if (e.endsWith('.proto')) out.push(relative(PROTO_DIR, p));
  }
  return out.sort();
}

const pkgDef = protoLoader.loadSync(protoFiles(PROTO_DIR), LOADER_OPTIONS);
// buf's descriptors (committed, checked against proto/ below) keep what protobufjs descriptors lose:
// proto3 `optional`, oneof membership, exact file names.
const registry: FileRegistry = createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(DESCRIPTOR_SET_BASE64, 'base64')));

/** A ts-proto message namespace: what every generated `export const Foo = {...}` provides. */
interface TsMessageFns {
  encode(message: unknown): { finish(): Uint8Array };
  decode(input: Uint8Array): unknown;
}

const TS_MODULES: Record<string, Record<string, unknown>> = {
  'vault.common.v1': commonPb,
  'vault.crypto.v1': cryptoPb,
  'vault.node.v1': nodePb,
  'vault.peer.v1': peerPb,
  'vault.storage.v1': storagePb,
};

function tsMessage(fullName: string): TsMessageFns {
  const dot = fullName.lastIndexOf('.');
  const mod = TS_MODULES[fullName.slice(0, dot)];
  const fns = mod?.[fullName.slice(dot + 1)] as TsMessageFns | undefined;
  if (!fns || typeof fns.encode !== 'function' || typeof fns.decode !== 'function') throw new Error(`no ts-proto message for ${fullName}`);
  return fns;
}

type Kind = 'unary' | 'client_stream' | 'server_stream' | 'bidi';

/** Every service of the project: method -> [streaming kind, request type, response type]. */
const EXPECTED_SERVICES: Record<string, { ts: Record<string, unknown>; methods: Record<string, [Kind, string, string]> }> = {
  'vault.peer.v1.PeerService': {
    ts: peerPb.PeerServiceService,
    methods: {
      Handshake: ['bidi', 'HandshakeRequest', 'HandshakeResponse'],
      StoreChunk: ['bidi', 'StoreChunkRequest', 'StoreChunkResponse'],
      GetFile: ['bidi', 'GetFileRequest', 'GetFileResponse'],
      SyncFolder: ['bidi', 'SyncFolderRequest', 'SyncFolderResponse'],
    },
  },
  'vault.crypto.v1.CryptoService': {
    ts: cryptoPb.CryptoServiceService,
    methods: {
      CreateDataKey: ['unary', 'CreateDataKeyRequest', 'CreateDataKeyResponse'],
      SealChunk: ['unary', 'SealChunkRequest', 'SealChunkResponse'],
      OpenChunk: ['unary', 'OpenChunkRequest', 'OpenChunkResponse'],
      Chunks: ['bidi', 'ChunksRequest', 'ChunksResponse'],
      SealManifest: ['unary', 'SealManifestRequest', 'SealManifestResponse'],
      OpenManifest: ['unary', 'OpenManifestRequest', 'OpenManifestResponse'],
      GetKeyInfo: ['unary', 'GetKeyInfoRequest', 'GetKeyInfoResponse'],
      RewrapDataKey: ['unary', 'RewrapDataKeyRequest', 'RewrapDataKeyResponse'],
      RotateVaultKey: ['unary', 'RotateVaultKeyRequest', 'RotateVaultKeyResponse'],
      RetireVaultKey: ['unary', 'RetireVaultKeyRequest', 'RetireVaultKeyResponse'],
    },
  },
  'vault.storage.v1.StorageService': {
    ts: storagePb.StorageServiceService,
    methods: {
      PutObject: ['unary', 'PutObjectRequest', 'PutObjectResponse'],
      GetObject: ['unary', 'GetObjectRequest', 'GetObjectResponse'],
      Objects: ['bidi', 'ObjectsRequest', 'ObjectsResponse'],
      HasObjects: ['unary', 'HasObjectsRequest', 'HasObjectsResponse'],
      ListObjects: ['server_stream', 'ListObjectsRequest', 'ListObjectsResponse'],
      DeleteObject: ['unary', 'DeleteObjectRequest', 'DeleteObjectResponse'],
      StatFolder: ['unary', 'StatFolderRequest', 'StatFolderResponse'],
      ListFolders: ['unary', 'ListFoldersRequest', 'ListFoldersResponse'],
      GetScrubStatus: ['unary', 'GetScrubStatusRequest', 'GetScrubStatusResponse'],
    },
  },
  'vault.node.v1.NodeService': {
    ts: nodePb.NodeServiceService,
    methods: {
      UploadFile: ['client_stream', 'UploadFileRequest', 'UploadFileResponse'],
      DownloadFile: ['server_stream', 'DownloadFileRequest', 'DownloadFileResponse'],
      StatFile: ['unary', 'StatFileRequest', 'StatFileResponse'],
      ListFiles: ['unary', 'ListFilesRequest', 'ListFilesResponse'],
      DeleteFile: ['unary', 'DeleteFileRequest', 'DeleteFileResponse'],
      ListNodes: ['unary', 'ListNodesRequest', 'ListNodesResponse'],
      RecoverFolder: ['unary', 'RecoverFolderRequest', 'RecoverFolderResponse'],
      GetNodeInfo: ['unary', 'GetNodeInfoRequest', 'GetNodeInfoResponse'],
      ListVersions: ['unary', 'ListVersionsRequest', 'ListVersionsResponse'],
      RestoreVersion: ['unary', 'RestoreVersionRequest', 'RestoreVersionResponse'],
      DeleteVersion: ['unary', 'DeleteVersionRequest', 'DeleteVersionResponse'],
      SendMessage: ['unary', 'SendMessageRequest', 'SendMessageResponse'],
      ListMessages: ['unary', 'ListMessagesRequest', 'ListMessagesResponse'],
      GetRecoveryStatus: ['unary', 'GetRecoveryStatusRequest', 'GetRecoveryStatusResponse'],
      StartRecovery: ['unary', 'StartRecoveryRequest', 'StartRecoveryResponse'],
      GetVaultKeyInfo: ['unary', 'GetVaultKeyInfoRequest', 'GetVaultKeyInfoResponse'],
      RotateVaultKey: ['unary', 'RotateVaultKeyRequest', 'RotateVaultKeyResponse'],
      ShredFile: ['unary', 'ShredFileRequest', 'ShredFileResponse'],
    },
  },
};

function kindOf(requestStream: boolean, responseStream: boolean): Kind {
  if (requestStream && responseStream) return 'bidi';
  if (requestStream) return 'client_stream';
  if (responseStream) return 'server_stream';
  return 'unary';
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** proto-loader's (de)serializers, found through the RPCs that carry each message type. */
interface PlCodec {
  serialize(value: object): Buffer;
  deserialize(bytes: Buffer): Record<string, unknown>;
}

function plCodecs(): Map<string, PlCodec> {
  const codecs = new Map<string, PlCodec>();
  for (const svcName of Object.keys(EXPECTED_SERVICES)) {
    const pkg = svcName.slice(0, svcName.lastIndexOf('.'));
    const svc = pkgDef[svcName] as protoLoader.ServiceDefinition;
    for (const m of Object.values(svc)) {
      const req = `${pkg}.${(m.requestType.type as { name: string }).name}`;
      const res = `${pkg}.${(m.responseType.type as { name: string }).name}`;
      codecs.set(req, { serialize: (v) => m.requestSerialize(v), deserialize: (b) => m.requestDeserialize(b) as Record<string, unknown> });
      codecs.set(res, { serialize: (v) => m.responseSerialize(v), deserialize: (b) => m.responseDeserialize(b) as Record<string, unknown> });
    }
  }
  return codecs;
}
const CODECS = plCodecs();

function codec(fullName: string): PlCodec {
  const c = CODECS.get(fullName);
  if (!c) throw new Error(`${fullName} is not carried by any RPC`);
  return c;
}

/** Both directions for one message: ts-proto encode -> proto-loader decode, and proto-loader encode -> ts-proto decode. */
function viaProtoLoader(fullName: string, tsValue: unknown): Record<string, unknown> {
  return codec(fullName).deserialize(Buffer.from(tsMessage(fullName).encode(tsValue).finish()));
}
function viaTsProto(fullName: string, plValue: object): unknown {
  return tsMessage(fullName).decode(codec(fullName).serialize(plValue));
}

function vaultMessages(): DescMessage[] {
  const out: DescMessage[] = [];
  const visit = (m: DescMessage) => {
    out.push(m);
    m.nestedMessages.forEach(visit);
  };
  for (const f of registry.files) if (f.proto.package.startsWith('vault.')) f.messages.forEach(visit);
  return out.sort((a, b) => a.typeName.localeCompare(b.typeName));
}

const SCALAR_NAMES: Record<number, string> = {
  [ScalarType.DOUBLE]: 'double',
  [ScalarType.FLOAT]: 'float',
  [ScalarType.INT64]: 'int64',
  [ScalarType.UINT64]: 'uint64',
  [ScalarType.INT32]: 'int32',
  [ScalarType.FIXED64]: 'fixed64',
  [ScalarType.FIXED32]: 'fixed32',
  [ScalarType.BOOL]: 'bool',
  [ScalarType.STRING]: 'string',
  [ScalarType.BYTES]: 'bytes',
  [ScalarType.UINT32]: 'uint32',
  [ScalarType.SFIXED32]: 'sfixed32',
  [ScalarType.SFIXED64]: 'sfixed64',
  [ScalarType.SINT32]: 'sint32',
  [ScalarType.SINT64]: 'sint64',
};

function fieldTypeName(f: DescField): string {
  switch (f.fieldKind) {
    case 'scalar':
      return SCALAR_NAMES[f.scalar];
    case 'enum':
      return f.enum.typeName;
    case 'message':
      return f.message.typeName;
    case 'list':
      return f.listKind === 'scalar' ? SCALAR_NAMES[f.scalar] : f.listKind === 'enum' ? f.enum.typeName : f.message.typeName;
    case 'map':
      return `map<${SCALAR_NAMES[f.mapKey]}, ${f.mapKind === 'scalar' ? SCALAR_NAMES[f.scalar] : f.mapKind === 'enum' ? f.enum.typeName : f.message.typeName}>`;
  }
}

/** One line per field, e.g. `2 size: optional int64` or `1 header: vault.node.v1.UploadHeader (oneof step)`. */
function describeField(f: DescField): string {
  const label = f.fieldKind === 'list' ? 'repeated ' : f.proto.proto3Optional ? 'optional ' : '';
  const oneof = f.oneof ? ` (oneof ${f.oneof.name})` : '';
  return `${f.number} ${f.name}: ${label}${fieldTypeName(f)}${oneof}`;
}

// ---- deterministic sample data --------------------------------------------------------------------------

/** mulberry32: small, seeded, good enough to vary test data reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const INT64_SAMPLES = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 5 * 2 ** 40 + 3, Number.MAX_SAFE_INTEGER, -1, -(2 ** 40)];
const UINT32_SAMPLES = [0, 1, 127, 128, 2 ** 31, 2 ** 32 - 1];
const STRING_SAMPLES = ['', 'a', 'docs/file.txt', 'päth/文件/🙂', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'x'.repeat(300)];

interface Sampler {
  rand: () => number;
  /** Which oneof case to choose, by position in the oneof (past the end: none). */
  oneofPick: number;
  /** Message types a sample touched (to prove every message is covered). */
  seen: Set<string>;
}

function pick<T>(s: Sampler, xs: readonly T[]): T {
  return xs[Math.floor(s.rand() * xs.length)] as T;
}

function sampleScalar(s: Sampler, t: ScalarType): unknown {
  switch (t) {
    case ScalarType.INT64:
      return pick(s, INT64_SAMPLES);
    case ScalarType.UINT32:
      return pick(s, UINT32_SAMPLES);
    case ScalarType.BOOL:
      return s.rand() < 0.5;
    case ScalarType.STRING:
      return pick(s, STRING_SAMPLES);
    case ScalarType.BYTES: {
      const n = pick(s, [0, 1, 255, 256, 257, 4096]);
      if (n === 256) return Buffer.from(ALL_BYTES);
      return Buffer.from(Array.from({ length: n }, () => Math.floor(s.rand() * 256)));
    }
    default:
      throw new Error(`no sampler for scalar type ${t}: extend the contract test`);
  }
}

/** A value of `desc` in proto-loader's shape (snake_case, enum names, Buffers, numbers). */
function samplePl(s: Sampler, desc: DescMessage, depth = 0): Record<string, unknown> {
  s.seen.add(desc.typeName);
  const out: Record<string, unknown> = {};
  for (const oneof of desc.oneofs) {
    const i = s.oneofPick % (oneof.fields.length + 1);
    const f = oneof.fields[i];
    if (f) out[f.name] = sampleFieldValue(s, f, depth);
  }
  for (const f of desc.fields) {
    if (f.oneof) continue;
    // Optional fields are left out now and then, but a message type not sampled yet is always reached
    // (coverage must not hang on the seed).
    const fresh = f.fieldKind === 'message' && !s.seen.has(f.message.typeName);
    if (f.proto.proto3Optional && !fresh && s.rand() < 0.4) continue;
    if (f.fieldKind === 'message' && (depth > 4 || (!fresh && s.rand() < 0.15))) continue;
    out[f.name] = sampleFieldValue(s, f, depth);
  }
  return out;
}

function sampleFieldValue(s: Sampler, f: DescField, depth: number): unknown {
  switch (f.fieldKind) {
    case 'scalar':
      return sampleScalar(s, f.scalar);
    case 'enum':
      return pick(s, f.enum.values).name;
    case 'message':
      return samplePl(s, f.message, depth + 1);
    case 'list': {
      // A message type reached only through a list is sampled at least once (coverage must not hang on the seed).
      const n = Math.floor(s.rand() * 4) || (f.listKind === 'message' && !s.seen.has(f.message.typeName) ? 1 : 0);
      return Array.from({ length: n }, () =>
        f.listKind === 'scalar' ? sampleScalar(s, f.scalar) : f.listKind === 'enum' ? pick(s, f.enum.values).name : samplePl(s, f.message, depth + 1),
      );
    }
    case 'map':
      throw new Error('maps are not used by the protos: extend the contract test');
  }
}

function scalarDefault(t: ScalarType): unknown {
  if (t === ScalarType.STRING) return '';
  if (t === ScalarType.BOOL) return false;
  if (t === ScalarType.BYTES) return Buffer.alloc(0);
  return 0;
}

function toCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * What ts-proto must hold for a proto-loader-shaped value: camelCase, `{ $case, value }` oneofs, enum
 * numbers, scalar defaults filled in, absent messages and absent optionals undefined.
 */
function plToTs(desc: DescMessage, pl: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const conv = (f: DescField, v: unknown): unknown => {
    if (f.fieldKind === 'enum' || (f.fieldKind === 'list' && f.listKind === 'enum')) {
      const value = f.enum.values.find((x) => x.name === v);
      if (!value) throw new Error(`bad enum value ${String(v)}`);
      return value.number;
    }
    if (f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')) return plToTs(f.message, v as Record<string, unknown>);
    if (Buffer.isBuffer(v)) return Buffer.from(v);
    return v;
  };
  for (const oneof of desc.oneofs) {
    const f = oneof.fields.find((x) => pl[x.name] !== undefined && pl[x.name] !== null);
    out[toCamel(oneof.name)] = f ? { $case: toCamel(f.name), value: conv(f, pl[f.name]) } : undefined;
  }
  for (const f of desc.fields) {
    if (f.oneof) continue;
    const v = pl[f.name];
    const key = toCamel(f.name);
    if (f.fieldKind === 'list') out[key] = ((v as unknown[] | undefined) ?? []).map((x) => conv(f, x));
    else if (v === undefined || v === null) out[key] = f.fieldKind === 'scalar' && !f.proto.proto3Optional ? scalarDefault(f.scalar) : f.fieldKind === 'enum' ? 0 : undefined;
    else out[key] = conv(f, v);
  }
  return out;
}

/** The value without the implicit-presence fields that hold their default (what canonical encoders omit). */
function pruneDefaults(desc: DescMessage, pl: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of desc.fields) {
    const v = pl[f.name];
    if (v === undefined || v === null) continue;
    if (f.fieldKind === 'message') out[f.name] = pruneDefaults(f.message, v as Record<string, unknown>);
    else if (f.fieldKind === 'list') {
      const items = v as unknown[];
      if (items.length) out[f.name] = f.listKind === 'message' ? items.map((x) => pruneDefaults(f.message, x as Record<string, unknown>)) : items;
    } else if (f.oneof || f.proto.proto3Optional) out[f.name] = v;
    else {
      const isDefault =
        f.fieldKind === 'enum' ? f.enum.values.find((x) => x.name === v)?.number === 0 : Buffer.isBuffer(v) ? v.length === 0 : f.fieldKind === 'scalar' && v === scalarDefault(f.scalar);
      if (!isDefault) out[f.name] = v;
    }
  }
  return out;
}

// ---- the tests ------------------------------------------------------------------------------------------

describe('proto contracts', () => {
  describe('services', () => {
    it('defines exactly the expected services', () => {
      const services = Object.keys(pkgDef)
        .filter((k) => !('format' in (pkgDef[k] as object)))
        .sort();
      expect(services).toEqual(Object.keys(EXPECTED_SERVICES).sort());
    });

    for (const [svcName, expected] of Object.entries(EXPECTED_SERVICES)) {
      const pkg = svcName.slice(0, svcName.lastIndexOf('.'));

      it(`${svcName}: methods and streaming kinds (proto-loader)`, () => {
        const svc = pkgDef[svcName] as protoLoader.ServiceDefinition;
        const actual = Object.fromEntries(
          Object.entries(svc).map(([name, m]) => [
            name,
            [kindOf(m.requestStream, m.responseStream), (m.requestType.type as { name: string }).name, (m.responseType.type as { name: string }).name],
          ]),
        );
        expect(actual).toEqual(expected.methods);
        for (const [name, m] of Object.entries(svc)) expect(m.path).toBe(`/${svcName}/${name}`);
      });

      it(`${svcName}: the ts-proto definition agrees`, () => {
        const ts = expected.ts as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>;
        expect(Object.keys(ts).sort()).toEqual(Object.keys(expected.methods).map(lowerFirst).sort());
        for (const [name, [kind]] of Object.entries(expected.methods)) {
          const def = ts[lowerFirst(name)];
          expect({ path: def?.path, kind: def && kindOf(def.requestStream, def.responseStream) }).toEqual({ path: `/${svcName}/${name}`, kind });
        }
      });

      it(`${svcName}: buf's descriptors (served by reflection) agree`, () => {
        const svc = registry.getService(svcName);
        expect(svc).toBeDefined();
        const kinds: Record<string, Kind> = { unary: 'unary', server_streaming: 'server_stream', client_streaming: 'client_stream', bidi_streaming: 'bidi' };
        const actual = Object.fromEntries(svc!.methods.map((m) => [m.name, [kinds[m.methodKind], m.input.typeName, m.output.typeName]]));
        const want = Object.fromEntries(Object.entries(expected.methods).map(([n, [k, req, res]]) => [n, [k, `${pkg}.${req}`, `${pkg}.${res}`]]));
        expect(actual).toEqual(want);
      });
    }
  });

  describe('messages', () => {
    it('field numbers and types of every message and enum (snapshot)', () => {
      const layout: Record<string, string[]> = {};
      for (const m of vaultMessages()) layout[`message ${m.typeName}`] = m.fields.map(describeField).sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
      for (const f of registry.files) {
        if (!f.proto.package.startsWith('vault.')) continue;
        for (const e of f.enums) layout[`enum ${e.typeName}`] = e.values.map((v) => `${v.number} ${v.name}`);
      }
      expect(Object.keys(layout).length).toBeGreaterThan(60);
      expect(layout).toMatchSnapshot();
    });

    it('proto-loader sees the same messages, field numbers and types as buf', () => {
      // protobufjs keeps type references as written, relative to the referring message's package:
      // resolve them the way protoc does, innermost scope first.
      const resolveLoaderType = (messageName: string, ref: string): string => {
        if (ref.startsWith('.')) return ref.slice(1);
        const scope = messageName.split('.').slice(0, -1);
        for (let i = scope.length; i >= 0; i--) {
          const candidate = [...scope.slice(0, i), ref].join('.');
          if (candidate in pkgDef) return candidate;
        }
        return `unresolved ${ref}`;
      };
      const TYPE_NAMES: Record<string, string> = {
        TYPE_INT64: 'int64',
        TYPE_UINT32: 'uint32',
        TYPE_BOOL: 'bool',
        TYPE_STRING: 'string',
        TYPE_BYTES: 'bytes',
      };
      const fromLoader: Record<string, string[]> = {};
      for (const [name, def] of Object.entries(pkgDef)) {
        if (!('format' in def) || def.format !== 'Protocol Buffer 3 DescriptorProto') continue;
        const fields = (def.type as { field: { name: string; number: number; label: string; type: string; typeName: string }[] }).field;
        fromLoader[name] = fields
          .map((f) => {
            const t = f.type === 'TYPE_MESSAGE' || f.type === 'TYPE_ENUM' ? resolveLoaderType(name, f.typeName) : (TYPE_NAMES[f.type] ?? f.type);
            return `${f.number} ${f.name}: ${f.label === 'LABEL_REPEATED' ? 'repeated ' : ''}${t}`;
          })
          .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
      }
      const fromBuf: Record<string, string[]> = {};
      for (const m of vaultMessages())
        fromBuf[m.typeName] = m.fields.map((f) => `${f.number} ${f.name}: ${f.fieldKind === 'list' ? 'repeated ' : ''}${fieldTypeName(f)}`).sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
      expect(fromLoader).toEqual(fromBuf);
    });

    it('every message has a ts-proto codec and is carried by some RPC', () => {
      for (const m of vaultMessages()) expect(() => tsMessage(m.typeName)).not.toThrow();
    });
  });

  describe('round trips between ts-proto and proto-loader', () => {
    const { ObjectKind } = commonPb;
    const { NodeState } = nodePb;

    it('int64 above 2^32 (StatFolderResponse)', () => {
      const ts: storagePb.StatFolderResponse = { chunks: 2 ** 32 + 1, chunkBytes: Number.MAX_SAFE_INTEGER, manifests: 2 ** 32, manifestBytes: 5 * 2 ** 40 + 7, gcRecords: 3, gcRecordBytes: 2 ** 33 };
      const pl = { chunks: 2 ** 32 + 1, chunk_bytes: Number.MAX_SAFE_INTEGER, manifests: 2 ** 32, manifest_bytes: 5 * 2 ** 40 + 7, gc_records: 3, gc_record_bytes: 2 ** 33 };
      expect(viaProtoLoader('vault.storage.v1.StatFolderResponse', ts)).toEqual(pl);
      expect(viaTsProto('vault.storage.v1.StatFolderResponse', pl)).toEqual(ts);
    });

    it('int64 in nested and repeated messages (FileInfo.size in ListFilesResponse)', () => {
      const file = (i: number, size: number): nodePb.FileInfo => ({ path: `docs/f${i}.bin`, version: i + 1, size, sha256: 'ab'.repeat(32), updatedUnixMs: 1_700_000_000_000 + i, chunks: Math.ceil(size / 2 ** 20), deleted: false });
      const ts: nodePb.ListFilesResponse = { files: [file(0, 0), file(1, 2 ** 32 - 1), file(2, 2 ** 32), file(3, 2 ** 32 + 1), file(4, 3 * 2 ** 40)], nextStartAfter: 'docs/f4.bin' };
      const pl = {
        files: ts.files.map((f) => ({ path: f.path, version: f.version, size: f.size, sha256: f.sha256, updated_unix_ms: f.updatedUnixMs, chunks: f.chunks, deleted: f.deleted })),
        next_start_after: 'docs/f4.bin',
      };
      expect(viaProtoLoader('vault.node.v1.ListFilesResponse', ts)).toEqual(pl);
      expect(viaTsProto('vault.node.v1.ListFilesResponse', pl)).toEqual(ts);
      expect(viaProtoLoader('vault.node.v1.UploadFileResponse', { file: ts.files[4] })).toEqual({ file: pl.files[4] });
      expect(viaProtoLoader('vault.node.v1.ListFilesResponse', { files: [], nextStartAfter: '' })).toEqual({ files: [], next_start_after: '' });
    });

    it('bytes with all 256 values (ObjectFrame.data)', () => {
      const data = Buffer.from(ALL_BYTES);
      const frame = { kind: ObjectKind.OBJECT_KIND_CHUNK, id: 'cd'.repeat(32), data };
      const ts: peerPb.StoreChunkRequest = { step: { $case: 'object', value: frame } };
      const back = viaProtoLoader('vault.peer.v1.StoreChunkRequest', ts);
      expect(back).toEqual({ step: 'object', object: { kind: 'OBJECT_KIND_CHUNK', id: frame.id, data } });
      expect(Buffer.isBuffer((back['object'] as { data: unknown }).data)).toBe(true);
      const decoded = viaTsProto('vault.peer.v1.StoreChunkRequest', { object: { kind: 'OBJECT_KIND_CHUNK', id: frame.id, data } }) as peerPb.StoreChunkRequest;
      expect(decoded).toEqual(ts);
      expect(decoded.step?.$case === 'object' && Buffer.compare(decoded.step.value.data, ALL_BYTES)).toBe(0);
      // Empty bytes are the proto3 default: absent on the wire, an empty Buffer on both sides.
      expect(viaProtoLoader('vault.storage.v1.GetObjectResponse', { data: Buffer.alloc(0) })).toEqual({ data: Buffer.alloc(0) });
      expect(viaTsProto('vault.storage.v1.GetObjectResponse', { data: Buffer.alloc(0) })).toEqual({ data: Buffer.alloc(0) });
    });

    it('oneof: UploadFileRequest header vs data', () => {
      const header: nodePb.UploadFileRequest = { step: { $case: 'header', value: { path: 'docs/file.txt', size: 2 ** 33 } } };
      expect(viaProtoLoader('vault.node.v1.UploadFileRequest', header)).toEqual({ step: 'header', header: { path: 'docs/file.txt', size: 2 ** 33, _size: 'size' } });
      const chunk = Buffer.from(ALL_BYTES.subarray(10, 20));
      const data: nodePb.UploadFileRequest = { step: { $case: 'data', value: chunk } };
      expect(viaProtoLoader('vault.node.v1.UploadFileRequest', data)).toEqual({ step: 'data', data: chunk });
      expect(viaTsProto('vault.node.v1.UploadFileRequest', { header: { path: 'docs/file.txt', size: 2 ** 33 } })).toEqual(header);
      expect(viaTsProto('vault.node.v1.UploadFileRequest', { data: chunk })).toEqual(data);
      // An empty data frame is still a data frame: a oneof member is sent even when it holds the default.
      expect(viaProtoLoader('vault.node.v1.UploadFileRequest', { step: { $case: 'data', value: Buffer.alloc(0) } })).toEqual({ step: 'data', data: Buffer.alloc(0) });
      expect(viaTsProto('vault.node.v1.UploadFileRequest', { data: Buffer.alloc(0) })).toEqual({ step: { $case: 'data', value: Buffer.alloc(0) } });
      // No step at all.
      expect(viaProtoLoader('vault.node.v1.UploadFileRequest', {})).toEqual({});
      expect(viaTsProto('vault.node.v1.UploadFileRequest', {})).toEqual({ step: undefined });
    });

    it('optional: UploadHeader.size absent vs 0', () => {
      const absent = tsMessage('vault.node.v1.UploadFileRequest').encode({ step: { $case: 'header', value: { path: 'p' } } }).finish();
      const zero = tsMessage('vault.node.v1.UploadFileRequest').encode({ step: { $case: 'header', value: { path: 'p', size: 0 } } }).finish();
      expect(Buffer.from(zero).length).toBe(Buffer.from(absent).length + 2); // tag 0x10 + varint 0: presence is on the wire
      const pl = codec('vault.node.v1.UploadFileRequest');
      expect(pl.deserialize(Buffer.from(absent))).toEqual({ step: 'header', header: { path: 'p' } });
      expect(pl.deserialize(Buffer.from(zero))).toEqual({ step: 'header', header: { path: 'p', size: 0, _size: 'size' } });
      expect(viaTsProto('vault.node.v1.UploadFileRequest', { header: { path: 'p' } })).toEqual({ step: { $case: 'header', value: { path: 'p', size: undefined } } });
      expect(viaTsProto('vault.node.v1.UploadFileRequest', { header: { path: 'p', size: 0 } })).toEqual({ step: { $case: 'header', value: { path: 'p', size: 0 } } });
      expect(viaTsProto('vault.node.v1.DownloadFileRequest', { path: 'p' })).toEqual({ path: 'p', version: undefined, offset: 0 });
      expect(viaTsProto('vault.node.v1.DownloadFileRequest', { path: 'p', version: 0 })).toEqual({ path: 'p', version: 0, offset: 0 });
    });

    it('oneof: every SyncFolderResponse case', () => {
      const key = { kind: ObjectKind.OBJECT_KIND_MANIFEST, id: 'ef'.repeat(32) };
      const plKey = { kind: 'OBJECT_KIND_MANIFEST', id: key.id };
      const cases: [peerPb.SyncFolderResponse, Record<string, unknown>][] = [
        [
          { step: { $case: 'inventory', value: { objects: [key, { kind: ObjectKind.OBJECT_KIND_CHUNK, id: '01'.repeat(32) }] } } },
          { step: 'inventory', inventory: { objects: [plKey, { kind: 'OBJECT_KIND_CHUNK', id: '01'.repeat(32) }] } },
        ],
        [{ step: { $case: 'inventoryEnd', value: { objects: 2 ** 32 + 5 } } }, { step: 'inventory_end', inventory_end: { objects: 2 ** 32 + 5 } }],
        [{ step: { $case: 'object', value: { ...key, data: Buffer.from(ALL_BYTES) } } }, { step: 'object', object: { ...plKey, data: Buffer.from(ALL_BYTES) } }],
        [{ step: { $case: 'missing', value: key } }, { step: 'missing', missing: plKey }],
      ];
      for (const [ts, pl] of cases) {
        expect(viaProtoLoader('vault.peer.v1.SyncFolderResponse', ts)).toEqual(pl);
        const { step: _step, ...plInput } = pl;
        expect(viaTsProto('vault.peer.v1.SyncFolderResponse', plInput)).toEqual(ts);
      }
    });

    it('enums: names in proto-loader, numbers in ts-proto (ListNodesResponse, HasObjectsRequest)', () => {
      const ts: nodePb.ListNodesResponse = {
        nodes: [
          { serverId: 'self', address: '127.0.0.1:7101', state: NodeState.NODE_STATE_SELF, lastSeenUnixMs: 0, sinceUnixMs: 5 },
          { serverId: 'peer', address: '127.0.0.1:7201', state: NodeState.NODE_STATE_CONNECTED, lastSeenUnixMs: 2 ** 41, sinceUnixMs: 2 ** 40 },
          { serverId: '', address: '127.0.0.1:7301', state: NodeState.NODE_STATE_DISCONNECTED, lastSeenUnixMs: 1, sinceUnixMs: 0 },
          { serverId: 'late', address: '127.0.0.1:7401', state: NodeState.NODE_STATE_LEFT, lastSeenUnixMs: 3, sinceUnixMs: 4 },
          { serverId: '', address: '', state: NodeState.NODE_STATE_UNSPECIFIED, lastSeenUnixMs: 0, sinceUnixMs: 0 },
        ],
      };
      const pl = {
        nodes: [
          { server_id: 'self', address: '127.0.0.1:7101', state: 'NODE_STATE_SELF', last_seen_unix_ms: 0, since_unix_ms: 5 },
          { server_id: 'peer', address: '127.0.0.1:7201', state: 'NODE_STATE_CONNECTED', last_seen_unix_ms: 2 ** 41, since_unix_ms: 2 ** 40 },
          { server_id: '', address: '127.0.0.1:7301', state: 'NODE_STATE_DISCONNECTED', last_seen_unix_ms: 1, since_unix_ms: 0 },
          { server_id: 'late', address: '127.0.0.1:7401', state: 'NODE_STATE_LEFT', last_seen_unix_ms: 3, since_unix_ms: 4 },
          { server_id: '', address: '', state: 'NODE_STATE_UNSPECIFIED', last_seen_unix_ms: 0, since_unix_ms: 0 },
        ],
      };
      expect(viaProtoLoader('vault.node.v1.ListNodesResponse', ts)).toEqual(pl);
      expect(viaTsProto('vault.node.v1.ListNodesResponse', pl)).toEqual(ts);
      const has: storagePb.HasObjectsRequest = { folder: 'f', kind: ObjectKind.OBJECT_KIND_CHUNK, ids: ['a', 'b', ''] };
      expect(viaProtoLoader('vault.storage.v1.HasObjectsRequest', has)).toEqual({ folder: 'f', kind: 'OBJECT_KIND_CHUNK', ids: ['a', 'b', ''] });
      expect(viaTsProto('vault.storage.v1.HasObjectsRequest', { folder: 'f', kind: 'OBJECT_KIND_CHUNK', ids: ['a', 'b', ''] })).toEqual(has);
    });

    it('repeated scalars: packed bools keep order and length (HasObjectsResponse)', () => {
      const rand = rng(7);
      const present = Array.from({ length: 1000 }, () => rand() < 0.5);
      expect(viaProtoLoader('vault.storage.v1.HasObjectsResponse', { present })).toEqual({ present });
      expect(viaTsProto('vault.storage.v1.HasObjectsResponse', { present })).toEqual({ present });
    });

    it('every RPC message, generated from the descriptors, survives both directions with identical wire bytes', () => {
      const seen = new Set<string>();
      let checked = 0;
      for (const typeName of [...CODECS.keys()].sort()) {
        const desc = registry.getMessage(typeName)!;
        const cases = Math.max(1, ...desc.oneofs.map((o) => o.fields.length + 1)) + 2;
        for (let k = 0; k < cases; k++) {
          const s: Sampler = { rand: rng(1000 + checked), oneofPick: k, seen };
          const pl = samplePl(s, desc);
          const want = plToTs(desc, pl);
          const plBytes = codec(typeName).serialize(pl);
          const tsBytes = Buffer.from(tsMessage(typeName).encode(want).finish());
          // protobufjs writes a proto3 scalar whenever the property is set, even to its default; ts-proto
          // (like protoc) omits it. Both decode the same; canonical bytes are compared without such fields.
          const canonical = codec(typeName).serialize(pruneDefaults(desc, pl));
          expect({ typeName, k, decoded: tsMessage(typeName).decode(plBytes) }).toEqual({ typeName, k, decoded: want });
          expect({ typeName, k, decoded: plToTs(desc, codec(typeName).deserialize(tsBytes)) }).toEqual({ typeName, k, decoded: want });
          expect({ typeName, k, hex: tsBytes.toString('hex') }).toEqual({ typeName, k, hex: canonical.toString('hex') });
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(100);
      // The RPC messages reach every message of the project, so the generated samples covered them all.
      expect([...seen].sort()).toEqual(vaultMessages().map((m) => m.typeName));
    });
  });

  describe('generated code', () => {
    it('is in sync with proto/ (tools/codegen.mjs --check)', async () => {
      const { stdout } = await run(process.execPath, [join(ROOT, 'tools/codegen.mjs'), '--check'], { cwd: ROOT, timeout: 60_000 });
      expect(stdout).toContain('up to date');
    });

    it('passes buf lint', async () => {
      const res = await run(BUF, ['lint'], { cwd: ROOT, timeout: 60_000 }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
      );
      expect(res).toEqual({ code: 0, out: '' });
    });
  });
});
