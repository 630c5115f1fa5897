/** GET /metrics: Prometheus text format (needs a token, read-only is enough). */
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Logger } from '@distri-vault/shared';
import type { HttpResponse as Response } from './http-types';
import { ApiOperation, ApiResponse } from '@nestjs/swagger';
import { ApiErrors, AUTH_ERRORS } from './api-docs';
import { LOGGER, METRICS, NODE_CLIENT } from './tokens';
import { type GatewayMetrics, NODE_SCRAPE_TIMEOUT_MS } from './metrics';
import type { NodeClient } from './node-client';
import { closedSignal } from './streaming';

/** The metrics route. */
@Controller()
export class MetricsController {
  constructor(
    @Inject(METRICS) private readonly metrics: GatewayMetrics,
    @Inject(NODE_CLIENT) private readonly node: NodeClient,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  /** Every metric of this gateway, with the home node's replication gauges fetched now. */
  @Get('metrics')
  @ApiOperation({ summary: 'Prometheus metrics of the gateway and the home node\'s replication gauges (refreshed on each scrape, 1 s bound)' })
  @ApiResponse({ status: 200, description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } })
  @ApiErrors(...AUTH_ERRORS)
  async metricsText(@Res() res: Response): Promise<void> {
    try {
      this.metrics.setNode(await this.node.nodeInfo(closedSignal(res), NODE_SCRAPE_TIMEOUT_MS));
    } catch (err) {
      // A scrape still answers: the gateway's own metrics are useful exactly when the node is not.
      this.log.debug({ err: (err as Error).message }, 'metrics: home node figures unavailable');
      this.metrics.setNode(undefined);
    }
    const text = await this.metrics.registry.metrics();
    res.setHeader('Content-Type', this.metrics.registry.contentType);
    res.end(text);
  }
}
