/**
 * Every route but the health probes needs `Authorization: Bearer <token>`: 401 without a valid one,
 * 403 when a read-only token asks for anything but GET or HEAD. Token routes need a read-write token.
 */
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { PermissionDeniedError, UnauthenticatedError } from '@distri-vault/shared';
import type { HttpRequest as Request, HttpResponse as Response } from '../http-types';
import { TOKEN_STORE } from '../tokens';
import type { TokenStore } from './token-store';

/** Paths served without a token. */
export const PUBLIC_PATHS = new Set(['/healthz', '/readyz']);

/** Global guard checking bearer tokens. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(@Inject(TOKEN_STORE) private readonly tokens: TokenStore) {}

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    const path = req.originalUrl.split('?')[0] ?? '';
    if (PUBLIC_PATHS.has(path)) return true;
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!m) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="distri-vault"');
      throw new UnauthenticatedError('missing bearer token (Authorization: Bearer <token>)');
    }
    const who = this.tokens.verify(m[1]!);
    if (!who) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="distri-vault", error="invalid_token"');
      throw new UnauthenticatedError('unknown or revoked token');
    }
    res.locals['tokenId'] = who.id;
    const reading = req.method === 'GET' || req.method === 'HEAD';
    const admin = path === '/v1/tokens' || path.startsWith('/v1/tokens/');
    if (who.scope !== 'write' && (!reading || admin)) {
      throw new PermissionDeniedError(admin ? 'managing tokens needs a read-write token' : 'this token is read-only');
    }
    return true;
  }
}
