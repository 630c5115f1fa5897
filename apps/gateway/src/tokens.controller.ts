/** `/v1/tokens`: create, list and revoke bearer tokens (read-write tokens only; see AuthGuard). */
import { Controller, Delete, Get, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import { InvalidArgumentError } from '@distri-vault/shared';
import type { HttpRequest as Request } from './http-types';
import { ApiParam } from '@nestjs/swagger';
import { ApiDoc, ApiEmpty, ApiErrors, ApiJson, ApiJsonBody, AUTH_ERRORS } from './api-docs';
import { TOKEN_STORE } from './tokens';
import type { TokenInfo, TokenScope, TokenStore } from './auth/token-store';

/** Largest JSON body accepted by the small JSON routes. */
export const MAX_JSON_BODY = 4096;

/** Reads a small JSON object body; InvalidArgumentError when it is too large or not a JSON object. */
export async function readJsonBody(req: Request, limit = MAX_JSON_BODY): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const piece of req as AsyncIterable<Buffer>) {
    size += piece.length;
    if (size > limit) throw new InvalidArgumentError(`body larger than ${limit} bytes`);
    parts.push(piece);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new InvalidArgumentError('body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError('body must be a JSON object');
  return value as Record<string, unknown>;
}

/** Token management routes. */
@Controller('v1/tokens')
@ApiErrors(...AUTH_ERRORS, 403)
export class TokensController {
  constructor(@Inject(TOKEN_STORE) private readonly tokens: TokenStore) {}

  /** Every live token (no secrets). */
  @Get()
  @ApiDoc('List bearer tokens (no secrets); needs a read-write token')
  @ApiJson(200, 'TokenList')
  list(): { tokens: TokenInfo[] } {
    return { tokens: this.tokens.list() };
  }

  /** Creates a token from `{"name", "scope": "read"|"write"}`; the answer is the only time its secret is shown. */
  @Post()
  @HttpCode(201)
  @ApiDoc('Create a bearer token', 'The answer is the only time its secret is shown. Defaults: name "token", scope "read".')
  @ApiJsonBody('CreateToken', false)
  @ApiJson(201, 'TokenCreated')
  @ApiErrors(400)
  async create(@Req() req: Request): Promise<TokenInfo & { token: string }> {
    const body = await readJsonBody(req);
    const name = body['name'] ?? 'token';
    const scope = body['scope'] ?? 'read';
    if (typeof name !== 'string') throw new InvalidArgumentError('invalid token name');
    return this.tokens.create(name, scope as TokenScope);
  }

  /** Revokes a token by ID: 204, 404 for an unknown one. */
  @Delete(':id')
  @HttpCode(204)
  @ApiDoc('Revoke a token at once')
  @ApiParam({ name: 'id', description: 'the token ID (from the list)', schema: { type: 'string' } })
  @ApiEmpty(204, 'revoked')
  @ApiErrors(404)
  async revoke(@Param('id') id: string): Promise<void> {
    await this.tokens.revoke(id);
  }
}
