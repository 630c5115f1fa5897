/**
 * The gateway's view of its home node: NodeService over a raw grpc-js client (ts-proto generated),
 * never Nest's ClientGrpc, which writes client streams without waiting for 'drain'. Every method takes
 * an AbortSignal that cancels the call; statuses come back as domain errors.
 */
import { Metadata } from '@grpc/grpc-js';
import { bindSignal, callUnary, createClient, fromStatus as statusToError, grpcCallOptions, UnavailableError, VaultError } from '@distri-vault/shared';
import {
  type FileInfo,
  type GetNodeInfoResponse,
  type GetVaultKeyInfoResponse,
  type RotationReport,
  type ShredFileResponse,
  type ListNodesResponse,
  type Message,
  type SendMessageResponse,
  type RecoverFolderResponse,
  type RecoveryStatus,
  type StartRecoveryResponse,
  type UploadFileResponse,
  type UploadHeader,
  NodeServiceClient,
} from '@distri-vault/shared/generated/vault/node/v1/node';
import { pumpUpload } from './streaming';

/**
 * A status as a domain error. grpc-js fills UNAVAILABLE with connection details (addresses, socket
 * errors) that say nothing useful to an HTTP client and describe the inside of the deployment, so those
 * become one plain message; the cause keeps the details for the log.
 */
function fromStatus(err: unknown, what: string): VaultError {
  const e = statusToError(err, what);
  if (e instanceof UnavailableError && /No connection established|ECONNREFUSED|ECONNRESET|Connection dropped|Name resolution failed/i.test(e.message)) {
    return new UnavailableError('home node unreachable', { cause: err });
  }
  return e;
}

/** One version being downloaded: its header, and its bytes in order. */
export interface Download {
  /** The version being sent (size, digest, version number). */
  info: FileInfo;
  /** The plaintext frames; iterate once. Breaking out early cancels the call. Fails with domain errors. */
  frames: AsyncIterable<Buffer>;
  /** Cancels the call without reading the frames (HEAD, 304). Safe to call at any time, and twice. */
  cancel(): void;
}

/** Options of a NodeClient. */
export interface NodeClientOptions {
  /** host:port of the node's NodeService. */
  address: string;
}

/** Client of the home node's NodeService. */
export class NodeClient {
  private readonly client: NodeServiceClient;

  constructor(_components: Record<string, never>, options: NodeClientOptions) {
    this.client = createClient(NodeServiceClient, options.address);
  }

  /**
   * Stores a new version: streams `body` as frames (header first), with backpressure. If the signal
   * fires or the body fails (client gone), the call is cancelled so the node writes no version.
   * When the node refuses the upload early, its error is thrown, not a cancellation.
   */
  async upload(header: UploadHeader, body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<{ file: FileInfo; bytes: number }> {
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    let nodeError: VaultError | undefined;
    let call!: ReturnType<NodeServiceClient['uploadFile']>;
    const response = new Promise<UploadFileResponse>((resolve, reject) => {
      call = this.client.uploadFile(new Metadata(), grpcCallOptions(), (err, res) => {
        if (err) {
          nodeError = fromStatus(err, 'UploadFile');
          // Stops the pump at once: it may be waiting for 'drain' or for more of the HTTP body.
          stop.abort(nodeError);
          reject(nodeError);
        } else resolve(res);
      });
    });
    response.catch(() => undefined);
    let bytes: number;
    try {
      bytes = await pumpUpload(call, header, body, stop.signal);
    } catch (err) {
      // The node failed, or the body broke off before `finish` was sent: either way nothing is stored (a
      // stream that ends without finish stores nothing, however grpc-js delivers the cancel).
      call.cancel();
      throw nodeError ?? err;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    const unbind = bindSignal(call, signal);
    try {
      const res = await response;
      if (!res.file) throw new VaultError('internal', 'node answered an upload without file info');
      return { file: res.file, bytes };
    } finally {
      unbind();
    }
  }

  /**
   * Starts a download (from plaintext byte `offset`) and waits for its header. Errors before the header
   * (NOT_FOUND, ...) are thrown from here; later ones from iterating `frames`.
   */
  async download(path: string, version: number | undefined, signal: AbortSignal, offset = 0): Promise<Download> {
    const call = this.client.downloadFile(version === undefined ? { path, offset } : { path, version, offset }, grpcCallOptions());
    const unbind = bindSignal(call, signal);
    const it: AsyncIterator<{ step?: { $case: 'header'; value: FileInfo } | { $case: 'data'; value: Buffer } }> = call[Symbol.asyncIterator]();
    let first;
    try {
      first = await it.next();
    } catch (err) {
      unbind();
      throw fromStatus(err, 'DownloadFile');
    }
    if (first.done || first.value.step?.$case !== 'header') {
      unbind();
      call.cancel();
      throw new VaultError('internal', 'node started a download without a header');
    }
    const info = first.value.step.value;
    async function* frames(): AsyncGenerator<Buffer> {
      let finished = false;
      try {
        for (;;) {
          let r;
          try {
            r = await it.next();
          } catch (err) {
            throw fromStatus(err, 'DownloadFile');
          }
          if (r.done) {
            finished = true;
            return;
          }
          if (r.value.step?.$case !== 'data') throw new VaultError('internal', 'node sent a second header');
          yield r.value.step.value;
        }
      } finally {
        unbind();
        if (!finished) call.cancel();
      }
    }
    const cancel = () => {
      unbind();
      call.cancel();
    };
    return { info, frames: frames(), cancel };
  }

  /** Describes a version (the latest, or `version`) without reading it; NotFoundError as download. */
  async stat(path: string, version: number | undefined, signal: AbortSignal): Promise<FileInfo> {
    const res = await this.unary(this.client, this.client.statFile, version === undefined ? { path } : { path, version }, { signal, what: 'StatFile' });
    if (!res.file) throw new VaultError('internal', 'node answered a stat without file info');
    return res.file;
  }

  /**
   * Latest version of every live file whose path starts with `prefix`, sorted by path: at most `limit`
   * (0: all) after `startAfter`; `next` is the startAfter of the following page, empty at the end.
   */
  async listFiles(prefix: string, signal: AbortSignal, page: { startAfter?: string; limit?: number } = {}): Promise<{ files: FileInfo[]; next: string }> {
    const req = { prefix, startAfter: page.startAfter ?? '', limit: page.limit ?? 0 };
    const res = await this.unary(this.client, this.client.listFiles, req, { signal, what: 'ListFiles' });
    return { files: res.files, next: res.nextStartAfter };
  }

  /** Records a deletion; NotFoundError for an unknown path. Returns the deletion's version. */
  async deleteFile(path: string, signal: AbortSignal): Promise<number> {
    const res = await this.unary(this.client, this.client.deleteFile, { path }, { signal, what: 'DeleteFile' });
    return res.version;
  }

  /** Every version of a file still in its history, deletions included, oldest first. */
  async listVersions(path: string, signal: AbortSignal): Promise<FileInfo[]> {
    const res = await this.unary(this.client, this.client.listVersions, { path }, { signal, what: 'ListVersions' });
    return res.versions;
  }

  /** Writes a new version with the content of `version`; resolves with the new version. */
  async restoreVersion(path: string, version: number, signal: AbortSignal): Promise<FileInfo> {
    const res = await this.unary(this.client, this.client.restoreVersion, { path, version }, { signal, what: 'RestoreVersion' });
    if (!res.file) throw new VaultError('internal', 'node answered a restore without file info');
    return res.file;
  }

  /** Removes one version, or all, from the file's history; resolves with the number removed. */
  async deleteVersion(path: string, version: number | 'all', signal: AbortSignal): Promise<number> {
    const req = version === 'all' ? { path, version: 0, all: true } : { path, version, all: false };
    const res = await this.unary(this.client, this.client.deleteVersion, req, { signal, what: 'DeleteVersion' });
    return res.removed;
  }

  /** The node itself, then its peers. */
  async listNodes(signal: AbortSignal): Promise<ListNodesResponse['nodes']> {
    const res = await this.unary(this.client, this.client.listNodes, {}, { signal, what: 'ListNodes' });
    return res.nodes;
  }

  /** Sends a message to member `to` (empty: every live member); resolves with its ID and recipients. */
  sendMessage(to: string, topic: string, body: Buffer, signal: AbortSignal): Promise<SendMessageResponse> {
    return this.unary(this.client, this.client.sendMessage, { to, topic, body }, { signal, what: 'SendMessage' });
  }

  /**
   * One page of the messages the node kept, received at or after `sinceUnixMs`, optionally of one topic,
   * oldest first, after the message `afterId`; `next` is the afterId of the following page, '' at the end.
   */
  async listMessages(sinceUnixMs: number, topic: string, afterId: string, signal: AbortSignal): Promise<{ messages: Message[]; next: string }> {
    const res = await this.unary(this.client, this.client.listMessages, { sinceUnixMs, topic, afterId }, { signal, what: 'ListMessages' });
    return { messages: res.messages, next: res.nextAfterId };
  }

  /** Restores the node's folder from its peers; resolves with what was restored. */
  recoverFolder(signal: AbortSignal): Promise<RecoverFolderResponse> {
    return this.unary(this.client, this.client.recoverFolder, {}, { signal, what: 'RecoverFolder' });
  }

  /** The node's current or last recovery. */
  async recoveryStatus(signal: AbortSignal): Promise<RecoveryStatus | undefined> {
    const res = await this.unary(this.client, this.client.getRecoveryStatus, {}, { signal, what: 'GetRecoveryStatus' });
    return res.status;
  }

  /** Starts a recovery in the background, or joins the one running; resolves at once with its status. */
  startRecovery(signal: AbortSignal): Promise<StartRecoveryResponse> {
    return this.unary(this.client, this.client.startRecovery, {}, { signal, what: 'StartRecovery' });
  }

  /** Identity and settings of the node; `timeoutMs` bounds the wait. */
  nodeInfo(signal: AbortSignal, timeoutMs?: number): Promise<GetNodeInfoResponse> {
    return this.unary(this.client, this.client.getNodeInfo, {}, { signal, timeoutMs, what: 'GetNodeInfo' });
  }

  /** The node's vault-key fingerprint and the previous keys it still keeps. */
  vaultKeyInfo(signal: AbortSignal): Promise<GetVaultKeyInfoResponse> {
    return this.unary(this.client, this.client.getVaultKeyInfo, {}, { signal, what: 'GetVaultKeyInfo' });
  }

  /** Rotates the node's vault key (re-wraps every kept version, retires the old key). */
  async rotateVaultKey(signal: AbortSignal): Promise<RotationReport | undefined> {
    return (await this.unary(this.client, this.client.rotateVaultKey, {}, { signal, what: 'RotateVaultKey' })).rotation;
  }

  /** Deletes a file (or one version) with crypto-shredding. */
  shredFile(path: string, version: number | undefined, signal: AbortSignal): Promise<ShredFileResponse> {
    return this.unary(this.client, this.client.shredFile, { path, version }, { signal, what: 'ShredFile' });
  }

  private unary: typeof callUnary = (client, method, req, opts) => callUnary(client, method, req, opts).catch((err: unknown) => {
    throw fromStatus(err, opts?.what ?? 'call');
  });

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
