/**
 * gRPC adapter of vault.crypto.v1.CryptoService: request -> CryptoEngine call -> response.
 * Status mapping is done by the shared `unary` wrapper; this file only maps fields and logs.
 */
import type { Logger } from '@distri-vault/shared';
import { bidi, errorCodeOf, FailedPreconditionError, InvalidArgumentError, itemErrorOf, serveItems, unary } from '@distri-vault/shared';
import type { ChunkContext as ProtoChunkContext, ChunksRequest, ChunksResponse, CryptoServiceServer } from '@distri-vault/shared/generated/vault/crypto/v1/crypto';
import type { CryptoEngine } from '../domain/crypto-engine';
import type { KeyringManager } from '../domain/keyring';
import type { ChunkContext } from '../domain/envelope';

/** Fully qualified service name, used for health and reflection. */
export const CRYPTO_SERVICE_NAME = 'vault.crypto.v1.CryptoService';

/**
 * Builds the CryptoService handlers over `engine`. Without a `keyring` manager, RotateVaultKey and
 * RetireVaultKey answer FAILED_PRECONDITION (the keyring is then managed offline).
 */
export function cryptoServiceImpl(engine: CryptoEngine, log: Logger, keyring?: KeyringManager): CryptoServiceServer {
  const manager = (): KeyringManager => {
    if (!keyring) throw new FailedPreconditionError('this crypto-service does not rotate its key online');
    return keyring;
  };
  // One log line per call with sizes and timing; never payloads or keys. Auth failures (DATA_LOSS) are
  // worth a warning: they mean corruption or tampering somewhere upstream.
  const timed = async <T>(rpc: string, fields: Record<string, unknown>, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const res = await work();
      log.debug({ rpc, ...fields, ms: +(performance.now() - started).toFixed(2) }, 'ok');
      return res;
    } catch (err) {
      const code = errorCodeOf(err);
      const level = code === 'data_loss' ? 'warn' : code === 'internal' ? 'error' : 'debug';
      log[level]({ rpc, ...fields, ms: +(performance.now() - started).toFixed(2), code }, (err as Error).message);
      throw err;
    }
  };

  // One item of a Chunks stream: its result, or its error as an item (the stream goes on).
  const chunkItem = async (req: ChunksRequest, signal: AbortSignal): Promise<ChunksResponse> => {
    const op = req.op;
    if (!op) throw new InvalidArgumentError('Chunks: a request without an operation');
    const seq = req.seq;
    try {
      switch (op.$case) {
        case 'seal': {
          const r = op.value;
          const sealed = await timed('Chunks.seal', { folder: r.context?.folder, index: r.context?.index, bytes: r.plaintext.length }, () =>
            engine.sealChunk(r.wrappedKey, chunkContext(r.context), r.plaintext, signal),
          );
          return { seq, result: { $case: 'sealed', value: { ciphertext: sealed.ciphertext, id: sealed.id } } };
        }
        case 'open': {
          const r = op.value;
          const plaintext = await timed('Chunks.open', { folder: r.context?.folder, index: r.context?.index, bytes: r.ciphertext.length }, () =>
            engine.openChunk(r.wrappedKey, chunkContext(r.context), r.ciphertext, signal),
          );
          return { seq, result: { $case: 'opened', value: { plaintext } } };
        }
        case 'createDataKey': {
          const wrappedKey = await timed('Chunks.createDataKey', { folder: op.value.folder }, () => engine.createDataKey(op.value.folder, signal));
          return { seq, result: { $case: 'dataKey', value: { wrappedKey } } };
        }
        case 'sealManifest': {
          const r = op.value;
          const sealed = await timed('Chunks.sealManifest', { folder: r.folder, bytes: r.plaintext.length }, () => engine.sealManifest(r.folder, r.plaintext, signal));
          return { seq, result: { $case: 'sealedManifest', value: { ciphertext: sealed.ciphertext, id: sealed.id } } };
        }
        case 'openManifest': {
          const r = op.value;
          const plaintext = await timed('Chunks.openManifest', { folder: r.folder, bytes: r.ciphertext.length }, () => engine.openManifest(r.folder, r.ciphertext, signal));
          return { seq, result: { $case: 'openedManifest', value: { plaintext } } };
        }
      }
    } catch (err) {
      if (signal.aborted) throw err;
      return { seq, result: { $case: 'error', value: itemErrorOf(err, log, 'Chunks') } };
    }
  };

  return {
    // Items are handled one at a time, in order (the work is synchronous CPU anyway): the next request is
    // read only once the previous answer is written, so a caller that stops reading stops the stream.
    chunks: bidi<ChunksRequest, ChunksResponse>(log, 'Chunks', (call, signal) => serveItems(call, signal, 1, chunkItem)),
    createDataKey: unary(log, 'CreateDataKey', (req, signal) =>
      timed('CreateDataKey', { folder: req.folder }, async () => ({ wrappedKey: await engine.createDataKey(req.folder, signal) })),
    ),
    sealChunk: unary(log, 'SealChunk', (req, signal) =>
      timed('SealChunk', { folder: req.context?.folder, index: req.context?.index, bytes: req.plaintext.length }, async () => {
        const sealed = await engine.sealChunk(req.wrappedKey, chunkContext(req.context), req.plaintext, signal);
        return { ciphertext: sealed.ciphertext, id: sealed.id };
      }),
    ),
    openChunk: unary(log, 'OpenChunk', (req, signal) =>
      timed('OpenChunk', { folder: req.context?.folder, index: req.context?.index, bytes: req.ciphertext.length }, async () => ({
        plaintext: await engine.openChunk(req.wrappedKey, chunkContext(req.context), req.ciphertext, signal),
      })),
    ),
    sealManifest: unary(log, 'SealManifest', (req, signal) =>
      timed('SealManifest', { folder: req.folder, bytes: req.plaintext.length }, async () => {
        const sealed = await engine.sealManifest(req.folder, req.plaintext, signal);
        return { ciphertext: sealed.ciphertext, id: sealed.id };
      }),
    ),
    openManifest: unary(log, 'OpenManifest', (req, signal) =>
      timed('OpenManifest', { folder: req.folder, bytes: req.ciphertext.length }, async () => ({
        plaintext: await engine.openManifest(req.folder, req.ciphertext, signal),
      })),
    ),
    getKeyInfo: unary(log, 'GetKeyInfo', (_req, signal) => timed('GetKeyInfo', {}, () => engine.keyInfo(signal))),
    rewrapDataKey: unary(log, 'RewrapDataKey', (req, signal) =>
      timed('RewrapDataKey', { folder: req.folder }, async () => ({
        wrappedKey: await engine.rewrapDataKey(req.folder, req.wrappedKey, signal),
        keyFingerprint: (await engine.keyInfo(signal)).keyFingerprint,
      })),
    ),
    // Key changes are logged at info: they are rare and an operator wants them in the record.
    rotateVaultKey: unary(log, 'RotateVaultKey', () =>
      timed('RotateVaultKey', {}, async () => {
        const r = await manager().rotate();
        log.info({ rpc: 'RotateVaultKey', fingerprint: r.keyFingerprint, previous: r.previousFingerprint }, 'vault key rotated');
        return r;
      }),
    ),
    retireVaultKey: unary(log, 'RetireVaultKey', (req) =>
      timed('RetireVaultKey', { fingerprint: req.fingerprint }, async () => {
        const previousFingerprints = await manager().retire(req.fingerprint);
        log.info({ rpc: 'RetireVaultKey', fingerprint: req.fingerprint, previousFingerprints }, 'vault key retired');
        return { previousFingerprints };
      }),
    ),
  };
}

function chunkContext(ctx: ProtoChunkContext | undefined): ChunkContext {
  if (!ctx) throw new InvalidArgumentError('context is required');
  return { folder: ctx.folder, fileId: ctx.fileId, index: ctx.index, last: ctx.last };
}
