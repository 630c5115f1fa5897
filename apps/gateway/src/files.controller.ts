/** HTTP routes of files: thin mapping from HTTP to NodeClient calls; the streaming lives in streaming.ts. */
import { Controller, Delete, Get, HttpCode, Inject, Put, Query, Req, Res } from '@nestjs/common';
import type { HttpRequest as Request, HttpResponse as Response } from './http-types';
import { LIMITS, NODE_CLIENT } from './tokens';
import { limitBytes, type LimitOptions } from './limits';
import type { NodeClient } from './node-client';
import { filePathFromUrl, parseContentLength, parseLimit, parsePrefix, parseVersion } from './paths';
import { closedSignal, pipeDownload, readChunks, writeDownloadHead } from './streaming';
import { type FileView, fileView } from './views';
import { type ByteRange, etagOf, noneMatch, parseRange, rangeApplies, rangeStartHint, sliceFrames } from './ranges';

/** One request header as a string (the first, if repeated). */
function header(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `/v1/files` routes. */
@Controller('v1/files')
export class FilesController {
  constructor(
    @Inject(NODE_CLIENT) private readonly node: NodeClient,
    @Inject(LIMITS) private readonly limits: LimitOptions,
  ) {}

  /**
   * Lists the latest version of every live file, sorted by path, optionally under `?prefix=`, a page of
   * `?limit=` (default and maximum in paths.ts) at a time; `next` (the `?after=` of the next page) is null
   * on the last page.
   */
  @Get()
  async list(
    @Query('prefix') prefix: unknown,
    @Query('limit') limit: unknown,
    @Query('after') after: unknown,
    @Res({ passthrough: true }) res: Response,
  ): Promise<{ files: FileView[]; next: string | null }> {
    const page = { limit: parseLimit(limit), startAfter: parsePrefix(after, 'after') };
    const { files, next } = await this.node.listFiles(parsePrefix(prefix), closedSignal(res), page);
    return { files: files.map(fileView), next: next || null };
  }

  /** Streams the request body into a new version of the file. */
  @Put('*path')
  @HttpCode(201)
  async upload(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<FileView> {
    const path = filePathFromUrl(req.originalUrl);
    const size = parseContentLength(req.headers['content-length']);
    const signal = closedSignal(res);
    const { file, bytes } = await this.node.upload(size === undefined ? { path } : { path, size }, limitBytes(readChunks(req, signal), this.limits.maxUploadBytes), signal);
    res.locals['bytes'] = bytes;
    return fileView(file);
  }

  /**
   * Streams a version of the file (the latest, or `?version=N`); HEAD sends only the headers. Honours
   * `Range` (206, or 416 past the end), `If-Range`, and `If-None-Match` (304) against the ETag.
   */
  @Get('*path')
  async download(@Req() req: Request, @Res() res: Response, @Query('version') version: unknown): Promise<void> {
    const path = filePathFromUrl(req.originalUrl);
    const v = parseVersion(version);
    const signal = closedSignal(res);
    // A Range whose start is known up front lets the node skip the chunks before it.
    const hint = header(req, 'if-range') === undefined ? rangeStartHint(header(req, 'range')) : 0;
    let dl = await this.node.download(path, v, signal, hint);
    const { info } = dl;
    const etag = etagOf(info.sha256);
    let range: ByteRange | undefined;
    try {
      if (noneMatch(header(req, 'if-none-match'), etag)) {
        dl.cancel();
        res.statusCode = 304;
        res.setHeader('ETag', etag);
        res.setHeader('X-Vault-Version', String(info.version));
        res.end();
        return;
      }
      if (rangeApplies(header(req, 'if-range'), etag)) range = parseRange(header(req, 'range'), info.size);
    } catch (err) {
      dl.cancel();
      throw err;
    }
    const length = writeDownloadHead(res, info, range);
    if (req.method === 'HEAD') {
      dl.cancel();
      res.end();
      return;
    }
    let skipped = hint;
    if (skipped > 0 && (!range || range.start < skipped)) {
      // Not the range the hint promised (cannot happen with rangeStartHint's rules): read from the start.
      dl.cancel();
      dl = await this.node.download(path, info.version, signal);
      skipped = 0;
    }
    const frames = range ? sliceFrames(dl.frames, { start: range.start - skipped, end: range.end - skipped }) : dl.frames;
    res.locals['bytes'] = await pipeDownload(info, frames, res, signal, length);
  }

  /** Deletes the file (records a deletion version): 204, or 404 for an unknown path. */
  @Delete('*path')
  @HttpCode(204)
  async remove(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<void> {
    const path = filePathFromUrl(req.originalUrl);
    await this.node.deleteFile(path, closedSignal(res));
  }
}
