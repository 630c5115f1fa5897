/** HTTP routes of files: thin mapping from HTTP to NodeClient calls; the streaming lives in streaming.ts. */
import { Controller, Delete, Get, HttpCode, Inject, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBytes, ApiBytesBody, ApiDoc, ApiEmpty, ApiErrors, ApiFilePath, ApiJson, ApiOptionalQuery, ApiRequestHeader, AUTH_ERRORS } from './api-docs';
import { ApiQuery } from '@nestjs/swagger';
import type { HttpRequest as Request, HttpResponse as Response } from './http-types';
import { LIMITS, NODE_CLIENT } from './tokens';
import { limitBytes, type LimitOptions } from './limits';
import type { NodeClient } from './node-client';
import { filePathFromUrl, parseContentLength, parseLimit, parsePrefix, parseVersion } from './paths';
import { closedSignal, discardBody, pipeDownload, readChunks, writeDownloadHead } from './streaming';
import { type FileView, fileView } from './views';
import { type ByteRange, etagOf, noneMatch, parseRange, rangeApplies, rangeStartHint, sliceFrames, suffixLength } from './ranges';

/** One request header as a string (the first, if repeated). */
function header(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `/v1/files` routes. */
@Controller('v1/files')
@ApiErrors(...AUTH_ERRORS)
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
  @ApiDoc('List files', 'The latest live version of every file, sorted by path, a page at a time; `next` is the `after` of the next page, null on the last.')
  @ApiOptionalQuery('prefix', 'only paths starting with this')
  @ApiOptionalQuery('limit', 'page size (default 1000)', { type: 'integer', minimum: 1, maximum: 10000 })
  @ApiOptionalQuery('after', 'the previous page\'s `next`')
  @ApiJson(200, 'FileList', 'a page of files')
  @ApiErrors(400, 503)
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
  @ApiDoc('Upload a new version of a file', 'The body is streamed to the home node; answers once every needed copy is durable. A client that disconnects leaves no version.')
  @ApiFilePath()
  @ApiBytesBody()
  @ApiRequestHeader('Content-Length', 'the size, checked against the bytes received; may be omitted (chunked)')
  @ApiJson(201, 'File', 'the version stored')
  @ApiErrors(400, 403, 413, 503)
  async upload(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<FileView> {
    const path = filePathFromUrl(req.originalUrl);
    const size = parseContentLength(req.headers['content-length']);
    const signal = closedSignal(res);
    try {
      const { file, bytes } = await this.node.upload(size === undefined ? { path } : { path, size }, limitBytes(readChunks(req, signal), this.limits.maxUploadBytes), signal);
      res.locals['bytes'] = bytes;
      return fileView(file);
    } catch (err) {
      // Refused before the whole body was read (the node answered early): read the rest first, or the
      // client still sending sees the connection reset instead of the status.
      await discardBody(req);
      throw err;
    }
  }

  /**
   * Streams a version of the file (the latest, or `?version=N`); HEAD sends only the headers. Honours
   * `Range` (206, or 416 past the end), `If-Range`, and `If-None-Match` (304) against the ETag.
   */
  @Get('*path')
  @ApiDoc('Download a file (HEAD: the headers only)', 'The latest version, or `?version=N`. Headers: `ETag` (the SHA-256), `X-Vault-Version`, `Content-Length`, `Last-Modified`, `Accept-Ranges`.')
  @ApiFilePath()
  @ApiQuery({ name: 'version', required: false, description: 'a specific version', schema: { type: 'integer', minimum: 1 } })
  @ApiRequestHeader('Range', '`bytes=a-b`, `bytes=a-` or `bytes=-n`: answers 206 with Content-Range')
  @ApiRequestHeader('If-None-Match', 'an ETag: 304 with no body when it is current')
  @ApiRequestHeader('If-Range', 'an ETag: the Range applies only when it is current')
  @ApiBytes(200, 'the whole file')
  @ApiBytes(206, 'the requested range (Content-Range)')
  @ApiEmpty(304, 'not modified: the If-None-Match ETag is current')
  @ApiErrors(400, 404, 416, 503)
  async download(@Req() req: Request, @Res() res: Response, @Query('version') version: unknown): Promise<void> {
    const path = filePathFromUrl(req.originalUrl);
    let v = parseVersion(version);
    const signal = closedSignal(res);
    const ifNoneMatch = header(req, 'if-none-match');
    if (req.method === 'HEAD' || ifNoneMatch !== undefined) {
      // HEAD and conditional GETs are answered from the file index (StatFile): no chunk is read.
      const info = await this.node.stat(path, v, signal);
      const etag = etagOf(info.sha256);
      if (noneMatch(ifNoneMatch, etag)) {
        res.statusCode = 304;
        res.setHeader('ETag', etag);
        res.setHeader('X-Vault-Version', String(info.version));
        res.end();
        return;
      }
      if (req.method === 'HEAD') {
        const range = rangeApplies(header(req, 'if-range'), etag) ? parseRange(header(req, 'range'), info.size) : undefined;
        writeDownloadHead(res, info, range);
        res.end();
        return;
      }
      // A GET whose ETag did not match: send the version the comparison was made against.
      v = info.version;
    }
    // A Range whose start is known up front lets the node skip the chunks before it. For the last n bytes
    // (`bytes=-n`) the start needs the size: one StatFile (no chunk read), and the download pinned to the
    // version it describes.
    let hint = 0;
    if (header(req, 'if-range') === undefined) {
      const suffix = suffixLength(header(req, 'range'));
      if (suffix !== undefined && suffix > 0) {
        const st = await this.node.stat(path, v, signal);
        v = st.version;
        hint = Math.max(0, st.size - suffix);
      } else hint = rangeStartHint(header(req, 'range'));
    }
    let dl = await this.node.download(path, v, signal, hint);
    const { info } = dl;
    const etag = etagOf(info.sha256);
    let range: ByteRange | undefined;
    try {
      if (rangeApplies(header(req, 'if-range'), etag)) range = parseRange(header(req, 'range'), info.size);
    } catch (err) {
      dl.cancel();
      throw err;
    }
    const length = writeDownloadHead(res, info, range);
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
  @ApiDoc('Delete a file', 'Records a deletion version; the history is kept (see /v1/versions).')
  @ApiFilePath()
  @ApiEmpty(204, 'deleted')
  @ApiErrors(400, 403, 404, 503)
  async remove(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<void> {
    const path = filePathFromUrl(req.originalUrl);
    await this.node.deleteFile(path, closedSignal(res));
  }
}
