/** HTTP routes about the network and the home node. */
import { Controller, Get, HttpCode, Inject, Post, Res } from '@nestjs/common';
import { ApiOperation } from '@nestjs/swagger';
import type { HttpResponse as Response } from './http-types';
import { NODE_CLIENT } from './tokens';
import type { NodeClient } from './node-client';
import { closedSignal } from './streaming';
import { type NodeInfoView, type NodeView, type RecoverView, nodeInfoView, nodeView, recoverView } from './views';

/** `/v1/nodes`, `/v1/node` and `/v1/recover`. */
@Controller('v1')
export class NetworkController {
  constructor(@Inject(NODE_CLIENT) private readonly node: NodeClient) {}

  /** The home node first, then its members (by server ID) with their state, then addresses not identified yet. */
  @Get('nodes')
  @ApiOperation({
    summary: 'The home node and every member it knows',
    description:
      '`{nodes: [{serverId, address, state, lastSeen, since}]}`: the home node first (state `self`), then members sorted by server ID ' +
      '(state `connecting`, `connected`, `suspect`, `down` or `left`), then dialed addresses that have not answered yet (empty serverId, `connecting`). ' +
      '`lastSeen` is the last message from the member, `since` its last state change (ISO-8601, null if never).',
  })
  async nodes(@Res({ passthrough: true }) res: Response): Promise<{ nodes: NodeView[] }> {
    const nodes = await this.node.listNodes(closedSignal(res));
    return { nodes: nodes.map(nodeView) };
  }

  /** Identity and settings of the home node. */
  @Get('node')
  async info(@Res({ passthrough: true }) res: Response): Promise<NodeInfoView> {
    return nodeInfoView(await this.node.nodeInfo(closedSignal(res)));
  }

  /** Restores the home node's folder from its peers and reports what was restored. */
  @Post('recover')
  @HttpCode(200)
  async recover(@Res({ passthrough: true }) res: Response): Promise<RecoverView> {
    return recoverView(await this.node.recoverFolder(closedSignal(res)));
  }
}
