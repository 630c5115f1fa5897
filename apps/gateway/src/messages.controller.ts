/**
 * `/v1/messages`: messages between nodes over their control streams. POST sends one from the home node to
 * one member (`to`) or to every live member; GET lists what the home node kept (sent and received).
 */
import { Controller, Get, HttpCode, Inject, Post, Query, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiQuery } from '@nestjs/swagger';
import { ApiErrors, ApiJson, ApiJsonBody, AUTH_ERRORS } from './api-docs';
import { InvalidArgumentError } from '@distri-vault/shared';
import type { HttpRequest as Request, HttpResponse as Response } from './http-types';
import { NODE_CLIENT } from './tokens';
import type { NodeClient } from './node-client';
import { closedSignal } from './streaming';
import { readJsonBody } from './tokens.controller';
import { type MessageView, messageView } from './views';

/** Largest JSON body of POST /v1/messages: a 64 KiB message body, escaped, plus the other fields. */
export const MAX_MESSAGE_JSON_BYTES = 400 * 1024;

/** Message routes. */
@Controller('v1/messages')
@ApiErrors(...AUTH_ERRORS, 503)
export class MessagesController {
  constructor(@Inject(NODE_CLIENT) private readonly node: NodeClient) {}

  /** Sends `{to?, topic, body}` (body: UTF-8 text; or bodyBase64) from the home node. */
  @Post()
  @HttpCode(201)
  @ApiOperation({
    summary: 'Send a message to one member, or broadcast it to every live member',
    description:
      'Body `{"to"?: "<server ID>", "topic": "...", "body": "text"}` (or `"bodyBase64"` for bytes, at most 64 KiB). ' +
      'Answers 201 `{id, recipients}`. 400 for a malformed server ID, topic or body; 404 for an unknown member; ' +
      '503 for a member that is down, left or not connected. Without `to` it goes to every connected or suspect member.',
  })
  @ApiJsonBody('SendMessage')
  @ApiJson(201, 'MessageSent', 'sent: its ID and the members it went to')
  @ApiErrors(400, 403, 404)
  async send(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<{ id: string; recipients: string[] }> {
    const b = await readJsonBody(req, MAX_MESSAGE_JSON_BYTES);
    const { to = '', topic, body, bodyBase64 } = b;
    if (typeof to !== 'string') throw new InvalidArgumentError('"to" must be a server ID string');
    if (typeof topic !== 'string' || !topic) throw new InvalidArgumentError('"topic" is required');
    if (body !== undefined && bodyBase64 !== undefined) throw new InvalidArgumentError('give "body" or "bodyBase64", not both');
    let bytes: Buffer;
    if (bodyBase64 !== undefined) {
      if (typeof bodyBase64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(bodyBase64)) throw new InvalidArgumentError('"bodyBase64" must be base64');
      bytes = Buffer.from(bodyBase64, 'base64');
    } else {
      if (body !== undefined && typeof body !== 'string') throw new InvalidArgumentError('"body" must be a string');
      bytes = Buffer.from((body as string | undefined) ?? '', 'utf8');
    }
    const r = await this.node.sendMessage(to, topic, bytes, closedSignal(res));
    return { id: r.id, recipients: r.recipients };
  }

  /** Messages the home node kept, oldest first, a page at a time: `?since=`, `?topic=` filter; `?after=` continues. */
  @Get()
  @ApiOperation({
    summary: 'Messages the home node sent and received (the most recent 1000, at most 8 MiB), oldest first',
    description: '`{messages, next}`: a page of about 768 KiB of bodies; when `next` is not null, ask again with `?after=<next>`.',
  })
  @ApiQuery({ name: 'since', required: false, description: 'only messages received at or after this time: ISO-8601 or Unix milliseconds' })
  @ApiQuery({ name: 'topic', required: false, description: 'only this topic' })
  @ApiQuery({ name: 'after', required: false, description: 'the previous page\'s `next`' })
  @ApiJson(200, 'MessageList')
  @ApiErrors(400)
  async list(
    @Res({ passthrough: true }) res: Response,
    @Query('since') since: unknown,
    @Query('topic') topic: unknown,
    @Query('after') after: unknown,
  ): Promise<{ messages: MessageView[]; next: string | null }> {
    if (topic !== undefined && typeof topic !== 'string') throw new InvalidArgumentError('give one topic');
    if (after !== undefined && (typeof after !== 'string' || !/^[0-9a-f]{32}$/.test(after))) throw new InvalidArgumentError('"after" must be a message ID');
    const page = await this.node.listMessages(parseSince(since), (topic as string | undefined) ?? '', (after as string | undefined) ?? '', closedSignal(res));
    return { messages: page.messages.map(messageView), next: page.next || null };
  }
}

/** `?since=`: Unix milliseconds or an ISO-8601 time; 0 when absent. */
export function parseSince(since: unknown): number {
  if (since === undefined || since === '') return 0;
  if (typeof since !== 'string') throw new InvalidArgumentError('give one "since"');
  if (/^\d{1,15}$/.test(since)) return Number(since);
  const ms = Date.parse(since);
  if (!/^\d{4}-\d{2}-\d{2}/.test(since) || Number.isNaN(ms) || ms < 0) throw new InvalidArgumentError('"since" must be Unix milliseconds or an ISO-8601 time');
  return ms;
}
