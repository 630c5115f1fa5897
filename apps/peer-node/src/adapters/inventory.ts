/**
 * A peer's inventory of one folder, read over SyncFolder: open without a summary (the responder then
 * streams its full inventory), read it to its end, half-close without wanting anything. IDs only: no
 * object bytes move.
 */
import type * as grpc from '@grpc/grpc-js';
import { assertObjectId, bindSignal, DataLossError, fromStatus, grpcCallOptions, InvalidArgumentError } from '@distri-vault/shared';
import type { PeerServiceClient, SyncFolderRequest, SyncFolderResponse } from '@distri-vault/shared/generated/vault/peer/v1/peer';
import type { FolderInventory } from '../domain/ports';
import { fromWire } from './kinds';

/** Reads `folder`'s whole inventory from the peer behind `client`. */
export async function readInventory(client: PeerServiceClient, folder: string, signal?: AbortSignal, what = 'peer'): Promise<FolderInventory> {
  const call: grpc.ClientDuplexStream<SyncFolderRequest, SyncFolderResponse> = client.syncFolder(grpcCallOptions({ timeoutMs: 120_000 }));
  const unbind = bindSignal(call, signal);
  const inv: FolderInventory = { chunk: new Set(), manifest: new Set(), gc: new Set() };
  let ended = false;
  try {
    call.write({ step: { $case: 'open', value: { folder } } });
    for await (const msg of call as AsyncIterable<SyncFolderResponse>) {
      const step = msg.step;
      if (step?.$case === 'inventory') {
        if (ended) throw new InvalidArgumentError('inventory after its end');
        for (const o of step.value.objects) {
          assertObjectId(o.id);
          inv[fromWire(o.kind)].add(o.id);
        }
      } else if (step?.$case === 'inventoryEnd') {
        ended = true;
        call.end();
      } else {
        throw new InvalidArgumentError(`unexpected SyncFolder frame ${step?.$case ?? '(none)'} while reading an inventory`);
      }
    }
    if (!ended) throw new DataLossError(`${what} ended SyncFolder before the end of its inventory`);
    return inv;
  } catch (err) {
    call.cancel();
    throw fromStatus(err, `SyncFolder inventory from ${what}`);
  } finally {
    unbind();
  }
}
