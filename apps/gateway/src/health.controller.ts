/** Liveness and readiness probes. */
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { HttpResponse as Response } from './http-types';
import { UnavailableError } from '@distri-vault/shared';
import { ApiOperation } from '@nestjs/swagger';
import { ApiErrors, ApiJson } from './api-docs';
import { NODE_CLIENT } from './tokens';
import type { NodeClient } from './node-client';
import { closedSignal } from './streaming';

/** How long readiness waits for the home node. */
export const READY_TIMEOUT_MS = 2000;

/** `/healthz` (process alive) and `/readyz` (home node answers GetNodeInfo within READY_TIMEOUT_MS). */
@Controller()
export class HealthController {
  constructor(@Inject(NODE_CLIENT) private readonly node: NodeClient) {}

  /** 200 while the process serves HTTP. */
  @Get('healthz')
  @ApiOperation({ summary: 'Liveness: the process serves HTTP (no token)', security: [] })
  @ApiJson(200, 'Status')
  @ApiErrors(500)
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** 200 when the home node answers; 503 otherwise. */
  @Get('readyz')
  @ApiOperation({ summary: 'Readiness: the home node answers within 2 s (no token)', security: [] })
  @ApiJson(200, 'Status')
  @ApiErrors(503, 500)
  async readyz(@Res({ passthrough: true }) res: Response): Promise<{ status: 'ok' }> {
    try {
      await this.node.nodeInfo(closedSignal(res), READY_TIMEOUT_MS);
    } catch (err) {
      throw new UnavailableError('home node is not answering', { cause: err });
    }
    return { status: 'ok' };
  }
}
