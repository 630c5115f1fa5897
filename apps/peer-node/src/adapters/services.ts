/**
 * The node's own crypto-service and storage-service, reached over gRPC, behind the domain's ports.
 * Calls wait for the service to be up (waitForReady) within a deadline, so start-up order does not matter.
 */
import type { ClientReadableStream } from '@grpc/grpc-js';
import { bindSignal, callMetadata, callUnary, createClient, fromStatus, grpcCallOptions, UnavailableError } from '@distri-vault/shared';
import { MuxStream } from './mux-stream';
import { CryptoServiceClient, type ChunksRequest, type ChunksResponse } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import { StorageServiceClient, type ListObjectsResponse, type ObjectsRequest, type ObjectsResponse } from '@distri-vault/shared/generated/vault/storage/v1/storage';
import type { ChunkContext, CryptoPort, ObjectKind, StoragePort, VaultKeyInfo } from '../domain/ports';
import { toWire } from './kinds';

/** Chunk operations outstanding at most on the crypto-service stream. */
export const CRYPTO_STREAM_IN_FLIGHT = 16;
/** Object puts and gets outstanding at most on the storage-service stream (its service works on 16 at once). */
export const STORAGE_STREAM_IN_FLIGHT = 16;

type Success<R> = Exclude<NonNullable<R>, { $case: 'error' }>;

/** CryptoPort over the crypto-service: data keys, chunks and manifests over its `Chunks` stream (mux-stream.ts), key management unary. */
export class CryptoServiceAdapter implements CryptoPort {
  readonly client: CryptoServiceClient;
  private readonly chunks: MuxStream<NonNullable<ChunksRequest['op']>, Success<ChunksResponse['result']>>;
  constructor(address: string, private readonly timeoutMs: number) {
    this.client = createClient(CryptoServiceClient, address);
    this.chunks = new MuxStream({ open: () => this.client.chunks(callMetadata({ waitForReady: true })), what: 'crypto-service', maxInFlight: CRYPTO_STREAM_IN_FLIGHT, timeoutMs });
  }
  private opts(signal?: AbortSignal, what = 'crypto-service') {
    return { signal, timeoutMs: this.timeoutMs, waitForReady: true, what };
  }
  async createDataKey(folder: string, signal?: AbortSignal): Promise<Buffer> {
    const r = await this.chunks.run({ $case: 'createDataKey', value: { folder } }, signal);
    if (r.$case !== 'dataKey') throw new UnavailableError(`crypto-service answered a data key request with ${r.$case}`);
    return r.value.wrappedKey;
  }
  async sealChunk(wrappedKey: Buffer, context: ChunkContext, plaintext: Buffer, signal?: AbortSignal) {
    const r = await this.chunks.run({ $case: 'seal', value: { wrappedKey, context, plaintext } }, signal);
    if (r.$case !== 'sealed') throw new UnavailableError(`crypto-service answered a seal with ${r.$case}`);
    return { id: r.value.id, ciphertext: r.value.ciphertext };
  }
  async openChunk(wrappedKey: Buffer, context: ChunkContext, ciphertext: Buffer, signal?: AbortSignal): Promise<Buffer> {
    const r = await this.chunks.run({ $case: 'open', value: { wrappedKey, context, ciphertext } }, signal);
    if (r.$case !== 'opened') throw new UnavailableError(`crypto-service answered an open with ${r.$case}`);
    return r.value.plaintext;
  }
  async sealManifest(folder: string, plaintext: Buffer, signal?: AbortSignal) {
    const r = await this.chunks.run({ $case: 'sealManifest', value: { folder, plaintext } }, signal);
    if (r.$case !== 'sealedManifest') throw new UnavailableError(`crypto-service answered a manifest seal with ${r.$case}`);
    return { id: r.value.id, ciphertext: r.value.ciphertext };
  }
  async openManifest(folder: string, ciphertext: Buffer, signal?: AbortSignal): Promise<Buffer> {
    const r = await this.chunks.run({ $case: 'openManifest', value: { folder, ciphertext } }, signal);
    if (r.$case !== 'openedManifest') throw new UnavailableError(`crypto-service answered a manifest open with ${r.$case}`);
    return r.value.plaintext;
  }
  async keyInfo(signal?: AbortSignal): Promise<VaultKeyInfo> {
    const r = await callUnary(this.client, this.client.getKeyInfo, {}, this.opts(signal));
    return { keyFingerprint: r.keyFingerprint, createdUnixMs: r.createdUnixMs, previousFingerprints: r.previousFingerprints };
  }
  async rewrapDataKey(folder: string, wrappedKey: Buffer, signal?: AbortSignal): Promise<Buffer> {
    return (await callUnary(this.client, this.client.rewrapDataKey, { folder, wrappedKey }, this.opts(signal))).wrappedKey;
  }
  async rotateVaultKey(signal?: AbortSignal): Promise<{ keyFingerprint: string; previousFingerprint: string }> {
    // A protected key file costs an scrypt run (~0.5 s): a longer deadline than per-chunk calls.
    const r = await callUnary(this.client, this.client.rotateVaultKey, {}, { ...this.opts(signal), timeoutMs: Math.max(this.timeoutMs, 60_000) });
    return { keyFingerprint: r.keyFingerprint, previousFingerprint: r.previousFingerprint };
  }
  async retireVaultKey(fingerprint: string, signal?: AbortSignal): Promise<string[]> {
    return (await callUnary(this.client, this.client.retireVaultKey, { fingerprint }, { ...this.opts(signal), timeoutMs: Math.max(this.timeoutMs, 60_000) })).previousFingerprints;
  }
  close(): void {
    this.chunks.close();
    this.client.close();
  }
}

/** StoragePort over the storage-service: puts and gets over its `Objects` stream (mux-stream.ts), the rest unary. */
export class StorageServiceAdapter implements StoragePort {
  readonly client: StorageServiceClient;
  private readonly objects: MuxStream<NonNullable<ObjectsRequest['op']>, Success<ObjectsResponse['result']>>;
  constructor(address: string, private readonly timeoutMs: number) {
    this.client = createClient(StorageServiceClient, address);
    this.objects = new MuxStream({ open: () => this.client.objects(callMetadata({ waitForReady: true })), what: 'storage-service', maxInFlight: STORAGE_STREAM_IN_FLIGHT, timeoutMs });
  }
  private opts(signal?: AbortSignal) {
    return { signal, timeoutMs: this.timeoutMs, waitForReady: true, what: 'storage-service' };
  }
  async put(folder: string, kind: ObjectKind, id: string, data: Buffer, signal?: AbortSignal): Promise<boolean> {
    const r = await this.objects.run({ $case: 'put', value: { folder, kind: toWire(kind), id, data } }, signal);
    if (r.$case !== 'put') throw new UnavailableError(`storage-service answered a put with ${r.$case}`);
    return r.value.created;
  }
  async get(folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<Buffer> {
    const r = await this.objects.run({ $case: 'get', value: { folder, kind: toWire(kind), id } }, signal);
    if (r.$case !== 'get') throw new UnavailableError(`storage-service answered a get with ${r.$case}`);
    return r.value.data;
  }
  async has(folder: string, kind: ObjectKind, ids: string[], signal?: AbortSignal): Promise<boolean[]> {
    if (ids.length === 0) return [];
    return (await callUnary(this.client, this.client.hasObjects, { folder, kind: toWire(kind), ids }, this.opts(signal))).present;
  }
  async *list(folder: string, kind: ObjectKind, signal?: AbortSignal): AsyncIterable<string[]> {
    const call: ClientReadableStream<ListObjectsResponse> = this.client.listObjects(
      { folder, kind: toWire(kind), startAfter: '' },
      callMetadata({ waitForReady: true }),
      grpcCallOptions({ timeoutMs: this.timeoutMs * 10 }),
    );
    const unbind = bindSignal(call, signal);
    try {
      for await (const batch of call as AsyncIterable<ListObjectsResponse>) yield batch.ids;
    } catch (err) {
      throw fromStatus(err, 'storage-service');
    } finally {
      unbind();
      call.cancel();
    }
  }
  async delete(folder: string, kind: ObjectKind, id: string, signal?: AbortSignal): Promise<boolean> {
    return (await callUnary(this.client, this.client.deleteObject, { folder, kind: toWire(kind), id }, this.opts(signal))).deleted;
  }
  async listFolders(signal?: AbortSignal): Promise<string[]> {
    return (await callUnary(this.client, this.client.listFolders, {}, this.opts(signal))).folders;
  }
  close(): void {
    this.objects.close();
    this.client.close();
  }
}
