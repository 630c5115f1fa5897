/**
 * The gRPC adapter of vault.storage.v1.StorageService: maps each request to one ObjectStore call (with the
 * call's AbortSignal) and the result back. Validation and errors belong to the domain; the shared handler
 * wrappers turn thrown domain errors into statuses.
 */
import type { Logger } from 'pino';
import { bidi, InvalidArgumentError, type ServiceEntry, errorCodeOf, itemErrorOf, serveItems, serverStream, unary, writeMessage } from '@distri-vault/shared';
import { ObjectKind as ProtoKind } from '@distri-vault/shared/generated/vault/common/v1/object';
import { StorageServiceService, type ObjectsRequest, type ObjectsResponse, type StorageServiceServer } from '@distri-vault/shared/generated/vault/storage/v1/storage';
import type { ObjectKind, ObjectStore } from '../domain/object-store';
import type { ScrubStatus } from '../domain/scrubber';

/** Fully qualified service name, used for health and reflection. */
export const STORAGE_SERVICE_NAME = 'vault.storage.v1.StorageService';

/** The domain kind of a wire kind; UNSPECIFIED and unknown values are InvalidArgumentError. */
export function kindFromProto(kind: ProtoKind): ObjectKind {
  if (kind === ProtoKind.OBJECT_KIND_CHUNK) return 'chunk';
  if (kind === ProtoKind.OBJECT_KIND_MANIFEST) return 'manifest';
  if (kind === ProtoKind.OBJECT_KIND_GC_RECORD) return 'gc';
  throw new InvalidArgumentError(`invalid object kind ${kind}: want OBJECT_KIND_CHUNK, OBJECT_KIND_MANIFEST or OBJECT_KIND_GC_RECORD`);
}

// Times one call and logs it at debug (one line per object would flood info at thousands of chunks/s).
async function logged<T>(log: Logger, fields: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const res = await fn();
    if (log.isLevelEnabled('debug')) log.debug({ ...fields, ms: Math.round((performance.now() - started) * 100) / 100 }, 'rpc ok');
    return res;
  } catch (err) {
    const code = errorCodeOf(err);
    // Bugs are logged with their cause by the shared handler wrapper. Corruption and a full disk need an
    // operator's eye; bad requests and misses are routine during sync and repair.
    if (code === 'data_loss' || code === 'resource_exhausted') log.warn({ ...fields, code }, (err as Error).message);
    else if (code !== 'internal') log.debug({ ...fields, code }, (err as Error).message);
    throw err;
  }
}

/** The wire kind of a domain kind. */
export function kindToProto(kind: ObjectKind): ProtoKind {
  return kind === 'chunk' ? ProtoKind.OBJECT_KIND_CHUNK : kind === 'manifest' ? ProtoKind.OBJECT_KIND_MANIFEST : ProtoKind.OBJECT_KIND_GC_RECORD;
}

/** Where GetScrubStatus reads from; absent means a store without a scrubber (reported as disabled). */
export interface ScrubStatusSource {
  status(): ScrubStatus;
}

/** Items of one Objects stream worked on at once (puts wait on fsync in the thread pool, so they overlap). */
export const OBJECTS_STREAM_CONCURRENCY = 16;

/** The StorageService handlers over `store`. */
export function createStorageHandlers(store: ObjectStore, log: Logger, scrubber?: ScrubStatusSource): StorageServiceServer {
  // One item of an Objects stream: its result, or its error as an item (the stream goes on).
  const objectItem = async (req: ObjectsRequest, signal: AbortSignal): Promise<ObjectsResponse> => {
    const op = req.op;
    if (!op) throw new InvalidArgumentError('Objects: a request without an operation (put or get)');
    try {
      const r = op.value;
      if (op.$case === 'put') {
        const res = await logged(log, { rpc: 'Objects.put', folder: r.folder, chunk: r.id, bytes: op.value.data.length }, () =>
          store.put(r.folder, kindFromProto(r.kind), r.id, op.value.data, { signal }),
        );
        return { seq: req.seq, result: { $case: 'put', value: res } };
      }
      const data = await logged(log, { rpc: 'Objects.get', folder: r.folder, chunk: r.id }, () => store.get(r.folder, kindFromProto(r.kind), r.id, { signal }));
      return { seq: req.seq, result: { $case: 'get', value: { data } } };
    } catch (err) {
      if (signal.aborted) throw err;
      return { seq: req.seq, result: { $case: 'error', value: itemErrorOf(err, log, 'Objects') } };
    }
  };

  return {
    objects: bidi<ObjectsRequest, ObjectsResponse>(log, 'Objects', (call, signal) => serveItems(call, signal, OBJECTS_STREAM_CONCURRENCY, objectItem)),
    putObject: unary(log, 'PutObject', (req, signal) =>
      logged(log, { rpc: 'PutObject', folder: req.folder, chunk: req.id, bytes: req.data.length }, () =>
        store.put(req.folder, kindFromProto(req.kind), req.id, req.data, { signal }),
      ),
    ),
    getObject: unary(log, 'GetObject', (req, signal) =>
      logged(log, { rpc: 'GetObject', folder: req.folder, chunk: req.id }, async () => ({
        data: await store.get(req.folder, kindFromProto(req.kind), req.id, { signal }),
      })),
    ),
    hasObjects: unary(log, 'HasObjects', (req, signal) =>
      logged(log, { rpc: 'HasObjects', folder: req.folder, ids: req.ids.length }, async () => ({
        present: await store.has(req.folder, kindFromProto(req.kind), req.ids, { signal }),
      })),
    ),
    listObjects: serverStream(log, 'ListObjects', (call, signal) => {
      const req = call.request;
      return logged(log, { rpc: 'ListObjects', folder: req.folder }, async () => {
        const batches = store.list(req.folder, kindFromProto(req.kind), { startAfter: req.startAfter, signal });
        for await (const ids of batches) await writeMessage(call, { ids }, signal);
      });
    }),
    deleteObject: unary(log, 'DeleteObject', (req, signal) =>
      logged(log, { rpc: 'DeleteObject', folder: req.folder, chunk: req.id }, async () => ({
        deleted: await store.delete(req.folder, kindFromProto(req.kind), req.id, { signal }),
      })),
    ),
    statFolder: unary(log, 'StatFolder', (req, signal) => logged(log, { rpc: 'StatFolder', folder: req.folder }, () => store.stat(req.folder, { signal }))),
    listFolders: unary(log, 'ListFolders', (_req, signal) => logged(log, { rpc: 'ListFolders' }, async () => ({ folders: await store.folders({ signal }) }))),
    getScrubStatus: unary(log, 'GetScrubStatus', async () => {
      const st = scrubber?.status() ?? { enabled: false, bytesPerSecond: 0, passesCompleted: 0, problems: [] };
      return {
        enabled: st.enabled,
        bytesPerSecond: st.bytesPerSecond,
        passesCompleted: st.passesCompleted,
        current: st.current,
        last: st.last,
        problems: st.problems.map((p) => ({ folder: p.folder, kind: kindToProto(p.kind), id: p.id, problem: p.problem, foundAtMs: p.foundAtMs })),
      };
    }),
  };
}

/** The service entry to pass to startGrpcServer. */
export function storageServiceEntry(store: ObjectStore, log: Logger, scrubber?: ScrubStatusSource): ServiceEntry {
  return { name: STORAGE_SERVICE_NAME, definition: StorageServiceService, implementation: createStorageHandlers(store, log, scrubber) };
}
