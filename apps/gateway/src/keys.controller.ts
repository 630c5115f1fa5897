/**
 * The vault key of the home node: `GET /v1/keys` (fingerprint, previous keys still kept),
 * `POST /v1/keys/rotate` (online rotation: new key, every kept version re-wrapped, old keys retired),
 * and `DELETE /v1/shred/<path>[?version=N]` (delete with crypto-shredding: the version(s) leave the
 * history, then a rotation makes every copy of them unreadable, on every peer). Rotation and shredding
 * answer once the old keys are retired; each returns the rotation's report, whose `notice` tells the
 * owner to write down the new recovery key.
 */
import { Controller, Delete, Get, HttpCode, Inject, Post, Query, Req, Res } from '@nestjs/common';
import type { RotationReport } from '@distri-vault/shared/generated/vault/node/v1/node';
import type { HttpRequest as Request, HttpResponse as Response } from './http-types';
import { NODE_CLIENT } from './tokens';
import type { NodeClient } from './node-client';
import { filePathFromUrl, parseVersion } from './paths';
import { closedSignal } from './streaming';
import { ApiDoc, ApiErrors, ApiFilePath, ApiJson, ApiOptionalQuery, AUTH_ERRORS } from './api-docs';

/** URL prefix of the shred route. */
export const SHRED_PREFIX = '/v1/shred/';

/** The vault key as clients see it. */
export interface KeyView {
  fingerprint: string;
  createdUnixMs: number;
  previousFingerprints: string[];
  /** True when old keys are still kept: a rotation did not finish (run it again). */
  rotationUnfinished: boolean;
}

/** A rotation's report as clients see it. */
export interface RotationView {
  fingerprint: string;
  retiredFingerprints: string[];
  manifestsRewritten: number;
  versionsShredded: number;
  /** What became garbage and what garbage collection did (see the API docs). */
  garbage: { manifests: number; chunks: number; chunkBytes: number; records: number; deleted: number };
  durationMs: number;
  notice: string;
}

function rotationView(r: RotationReport | undefined): RotationView {
  return {
    fingerprint: r?.keyFingerprint ?? '',
    retiredFingerprints: r?.retiredFingerprints ?? [],
    manifestsRewritten: r?.manifestsRewritten ?? 0,
    versionsShredded: r?.versionsShredded ?? 0,
    garbage: { manifests: r?.garbage?.manifests ?? 0, chunks: r?.garbage?.chunks ?? 0, chunkBytes: r?.garbage?.chunkBytes ?? 0, records: r?.garbage?.records ?? 0, deleted: r?.garbage?.deleted ?? 0 },
    durationMs: r?.durationMs ?? 0,
    notice: r?.notice ?? '',
  };
}

/** Vault-key routes. */
@Controller('v1')
@ApiErrors(...AUTH_ERRORS, 503)
export class KeysController {
  constructor(@Inject(NODE_CLIENT) private readonly node: NodeClient) {}

  /** The current vault key's fingerprint and the previous keys still kept. */
  @Get('keys')
  @ApiDoc("The home node's vault key", 'Its fingerprint, and older keys still kept when a rotation did not finish.')
  @ApiJson(200, 'KeyInfo')
  async info(@Res({ passthrough: true }) res: Response): Promise<KeyView> {
    const k = await this.node.vaultKeyInfo(closedSignal(res));
    return { fingerprint: k.keyFingerprint, createdUnixMs: k.createdUnixMs, previousFingerprints: k.previousFingerprints, rotationUnfinished: k.previousFingerprints.length > 0 };
  }

  /** Rotates the vault key (409 while another rotation runs). */
  @Post('keys/rotate')
  @HttpCode(200)
  @ApiDoc('Rotate the vault key', 'New key; every kept version re-wrapped (no chunk re-encrypted); old keys destroyed. Export the new recovery key afterwards.')
  @ApiJson(200, 'Rotation')
  @ApiErrors(403, 409, 412)
  async rotate(@Res({ passthrough: true }) res: Response): Promise<RotationView> {
    return rotationView(await this.node.rotateVaultKey(closedSignal(res)));
  }

  /** Deletes every version of a file (or `?version=N`) with crypto-shredding. */
  @Delete('shred/*path')
  @ApiDoc('Delete with crypto-shredding', 'Removes every version (or `?version=N`) from the history, then rotates the vault key: no copy of them, on any disk, can be decrypted afterwards.')
  @ApiFilePath()
  @ApiOptionalQuery('version', 'the one version to shred', { type: 'integer', minimum: 1 })
  @ApiJson(200, 'Shredded')
  @ApiErrors(400, 403, 404, 409, 412)
  async shred(@Req() req: Request, @Res({ passthrough: true }) res: Response, @Query('version') version: unknown): Promise<{ removed: number; rotation: RotationView }> {
    const path = filePathFromUrl(req.originalUrl, SHRED_PREFIX);
    const r = await this.node.shredFile(path, parseVersion(version), closedSignal(res));
    return { removed: r.versionsRemoved, rotation: rotationView(r.rotation) };
  }
}
