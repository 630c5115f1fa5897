/** GET /metrics: Prometheus text format (needs a token, read-only is enough). */
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { HttpResponse as Response } from './http-types';
import { METRICS } from './tokens';
import type { GatewayMetrics } from './metrics';

/** The metrics route. */
@Controller()
export class MetricsController {
  constructor(@Inject(METRICS) private readonly metrics: GatewayMetrics) {}

  /** Every metric of this gateway. */
  @Get('metrics')
  async metricsText(@Res() res: Response): Promise<void> {
    const text = await this.metrics.registry.metrics();
    res.setHeader('Content-Type', this.metrics.registry.contentType);
    res.end(text);
  }
}
