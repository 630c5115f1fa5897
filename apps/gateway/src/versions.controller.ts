/**
 * `/v1/versions/<path>`: a file's history. GET lists it; POST `?version=N` makes version N the newest
 * (201, the new version); DELETE `?version=N` removes one version, `?all=true` every one (200,
 * `{removed}`). Reading a version is `GET /v1/files/<path>?version=N`.
 */
import { Controller, Delete, Get, HttpCode, Inject, Post, Query, Req, Res } from '@nestjs/common';
import { InvalidArgumentError } from '@distri-vault/shared';
import { ApiQuery } from '@nestjs/swagger';
import { ApiDoc, ApiErrors, ApiFilePath, ApiJson, ApiOptionalQuery, AUTH_ERRORS } from './api-docs';
import type { HttpRequest as Request, HttpResponse as Response } from './http-types';
import { NODE_CLIENT } from './tokens';
import type { NodeClient } from './node-client';
import { filePathFromUrl, parseVersion, VERSIONS_PREFIX } from './paths';
import { closedSignal } from './streaming';
import { type FileView, fileView } from './views';

/** Version routes. */
@Controller('v1/versions')
@ApiErrors(...AUTH_ERRORS)
export class VersionsController {
  constructor(@Inject(NODE_CLIENT) private readonly node: NodeClient) {}

  /** Every version still in the file's history, oldest first; deletion records have `deleted: true`. */
  @Get('*path')
  @ApiDoc("List a file's versions", 'Every version still in its history, oldest first; deletion records have `deleted: true`.')
  @ApiFilePath()
  @ApiJson(200, 'VersionList')
  @ApiErrors(400, 404, 503)
  async list(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<{ versions: FileView[] }> {
    const path = filePathFromUrl(req.originalUrl, VERSIONS_PREFIX);
    const versions = await this.node.listVersions(path, closedSignal(res));
    return { versions: versions.map(fileView) };
  }

  /** Restores `?version=N` as the newest version. */
  @Post('*path')
  @HttpCode(201)
  @ApiDoc('Restore an old version as the newest', 'Writes a new version with the content of `?version=N` (no bytes are copied).')
  @ApiFilePath()
  @ApiQuery({ name: 'version', required: true, description: 'the version to restore', schema: { type: 'integer', minimum: 1 } })
  @ApiJson(201, 'File', 'the new version')
  @ApiErrors(400, 403, 404, 503)
  async restore(@Req() req: Request, @Res({ passthrough: true }) res: Response, @Query('version') version: unknown): Promise<FileView> {
    const path = filePathFromUrl(req.originalUrl, VERSIONS_PREFIX);
    const v = parseVersion(version);
    if (v === undefined) throw new InvalidArgumentError('give the version to restore: ?version=N');
    return fileView(await this.node.restoreVersion(path, v, closedSignal(res)));
  }

  /** Removes `?version=N`, or every version with `?all=true`. */
  @Delete('*path')
  @ApiDoc('Remove one version, or every version', 'Exactly one of `?version=N` and `?all=true`. The newest remaining live version becomes current.')
  @ApiFilePath()
  @ApiOptionalQuery('version', 'the version to remove', { type: 'integer', minimum: 1 })
  @ApiOptionalQuery('all', 'remove the whole history', { type: 'string', enum: ['true'] })
  @ApiJson(200, 'Removed')
  @ApiErrors(400, 403, 404, 503)
  async remove(@Req() req: Request, @Res({ passthrough: true }) res: Response, @Query('version') version: unknown, @Query('all') all: unknown): Promise<{ removed: number }> {
    const path = filePathFromUrl(req.originalUrl, VERSIONS_PREFIX);
    const v = parseVersion(version);
    if (all !== undefined && all !== 'true') throw new InvalidArgumentError('invalid all: want all=true');
    if ((v === undefined) === (all === undefined)) throw new InvalidArgumentError('give exactly one of ?version=N and ?all=true');
    return { removed: await this.node.deleteVersion(path, v ?? 'all', closedSignal(res)) };
  }
}
