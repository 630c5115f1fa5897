/** Conversions between the domain's object kinds and the wire enum. */
import { InvalidArgumentError } from '@distri-vault/shared';
import { ObjectKind as WireKind } from '@distri-vault/shared/generated/vault/common/v1/object';
import type { ObjectKind } from '../domain/ports';

export { WireKind };

/** Domain kind -> wire enum. */
const WIRE: Record<ObjectKind, WireKind> = { chunk: WireKind.OBJECT_KIND_CHUNK, manifest: WireKind.OBJECT_KIND_MANIFEST, gc: WireKind.OBJECT_KIND_GC_RECORD };

export function toWire(kind: ObjectKind): WireKind {
  return WIRE[kind];
}

/** Wire enum -> domain kind; INVALID_ARGUMENT for anything else. */
export function fromWire(kind: WireKind | number): ObjectKind {
  if (kind === WireKind.OBJECT_KIND_CHUNK) return 'chunk';
  if (kind === WireKind.OBJECT_KIND_MANIFEST) return 'manifest';
  if (kind === WireKind.OBJECT_KIND_GC_RECORD) return 'gc';
  throw new InvalidArgumentError(`unknown object kind ${kind}`);
}
