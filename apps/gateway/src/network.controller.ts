/** HTTP routes about the network and the home node. */
import { Controller, Get, Inject, Post, Query, Res } from '@nestjs/common';
import { ApiOperation } from '@nestjs/swagger';
import { ApiDoc, ApiErrors, ApiJson, ApiOptionalQuery, AUTH_ERRORS } from './api-docs';
import { InvalidArgumentError } from '@distri-vault/shared';
import type { HttpResponse as Response } from './http-types';
import { NODE_CLIENT } from './tokens';
import type { NodeClient } from './node-client';
import { closedSignal } from './streaming';
import { type NodeInfoView, type NodeView, type RecoverView, type RecoveryStatusView, type ReplicationView, nodeInfoView, nodeView, recoverView, recoveryStatusView, replicationView } from './views';

/** `/v1/nodes`, `/v1/node`, `/v1/replication` and `/v1/recover`. */
@Controller('v1')
@ApiErrors(...AUTH_ERRORS, 503)
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
  @ApiJson(200, 'NodeList')
  async nodes(@Res({ passthrough: true }) res: Response): Promise<{ nodes: NodeView[] }> {
    const nodes = await this.node.listNodes(closedSignal(res));
    return { nodes: nodes.map(nodeView) };
  }

  /** Identity and settings of the home node. */
  @Get('node')
  @ApiDoc('Identity and settings of the home node, its replication backlog and last repair pass')
  @ApiJson(200, 'NodeInfo')
  async info(@Res({ passthrough: true }) res: Response): Promise<NodeInfoView> {
    return nodeInfoView(await this.node.nodeInfo(closedSignal(res)));
  }

  /**
   * Per-folder replication health (objects below R copies, sole copies) from the home node's last repair
   * pass, with the pass time, and the backlog now.
   */
  @Get('replication')
  @ApiDoc(
    'Per-folder replication health',
    'From the home node\'s last repair pass: per folder it holds objects of, the objects, those below R copies among the members it could reach, and those with no other reachable copy; with the pass time (`pass` null before the first pass) and the backlog now.',
  )
  @ApiJson(200, 'Replication')
  async replication(@Res({ passthrough: true }) res: Response): Promise<ReplicationView> {
    return replicationView(await this.node.nodeInfo(closedSignal(res)));
  }

  /** Progress of the home node's current or last recovery (phase "idle" if none ran). */
  @Get('recover')
  @ApiDoc("Progress of the home node's current or last recovery", 'Phase `idle` if none ran yet.')
  @ApiJson(200, 'RecoveryStatus')
  async recoveryStatus(@Res({ passthrough: true }) res: Response): Promise<RecoveryStatusView> {
    return recoveryStatusView(await this.node.recoveryStatus(closedSignal(res)));
  }

  /**
   * Starts a recovery of the home node's folder from its peers, or joins the one running: 202 with its
   * status (then poll GET). With `?wait=true`: waits for the end and answers 200 with what was restored.
   */
  @Post('recover')
  @ApiDoc("Start a recovery of the home node's folder from its peers", 'Or join the one running: 202 with its status (poll GET). With `?wait=true`: waits for the end, 200 with what was restored.')
  @ApiOptionalQuery('wait', 'wait for the end', { type: 'string', enum: ['true', 'false'] })
  @ApiJson(202, 'RecoveryStarted', 'started or joined')
  @ApiJson(200, 'RecoverySummary', 'with ?wait=true: finished')
  @ApiErrors(400, 403)
  async recover(@Res({ passthrough: true }) res: Response, @Query('wait') wait: unknown): Promise<RecoverView | (RecoveryStatusView & { joined: boolean })> {
    if (wait !== undefined && wait !== 'true' && wait !== 'false') throw new InvalidArgumentError('invalid wait: want wait=true');
    if (wait === 'true') {
      res.status(200);
      return recoverView(await this.node.recoverFolder(closedSignal(res)));
    }
    const r = await this.node.startRecovery(closedSignal(res));
    res.status(202);
    return { ...recoveryStatusView(r.status), joined: r.joined };
  }
}
