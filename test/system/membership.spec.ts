/**
 * Membership and messaging with real processes (tools/network.cjs): a node joins at run time through one
 * member, a SIGKILLed node goes suspect then down and comes back, a SIGTERMed one is `left` at once;
 * messages to one node and to all, through the gateway's HTTP API and the CLI.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { callUnary, createClient, serverIdFromHash } from '@distri-vault/shared';
import { NodeServiceClient, NodeState, type NodeInfo } from '@distri-vault/shared/generated/vault/node/v1/node';
import { eventually, request, setBearerToken } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startNetwork } = require('../../tools/network.cjs');
const run = promisify(execFile);
const CLI = join(__dirname, '../../tools/distri-vault.cjs');

jest.setTimeout(240_000);

const HEARTBEAT_MS = 500; // suspect after 3 x 500 ms of silence
const DOWN_AFTER_MS = 5000;

describe('membership and messaging (real processes)', () => {
  let root: string;
  let net: any;
  let base: string;
  const clients = new Map<string, NodeServiceClient>();
  const ids: string[] = [];

  const client = (node: any): NodeServiceClient => {
    let c = clients.get(node.clientAddress);
    if (!c) clients.set(node.clientAddress, (c = createClient(NodeServiceClient, node.clientAddress)));
    return c;
  };
  const listNodes = async (node: any): Promise<NodeInfo[]> => {
    const c = client(node);
    return (await callUnary(c, c.listNodes, {}, { timeoutMs: 5000, what: 'ListNodes' })).nodes;
  };
  const listMessages = async (node: any, topic = '') => {
    const c = client(node);
    return (await callUnary(c, c.listMessages, { sinceUnixMs: 0, topic, afterId: '' }, { timeoutMs: 5000, what: 'ListMessages' })).messages;
  };
  /** How `node` sees the member `id` (its NodeState), undefined if it does not list it. */
  const stateOf = async (node: any, id: string) => (await listNodes(node)).find((n) => n.serverId === id)?.state;
  /** True when `node` lists exactly the other `peers` as connected, each once, and nothing else. */
  const seesAll = async (node: any, self: string, peers: string[]) => {
    const nodes = await listNodes(node);
    const others = nodes.filter((n) => n.state !== NodeState.NODE_STATE_SELF);
    return (
      nodes[0]?.serverId === self &&
      others.length === peers.length &&
      others.every((n) => n.state === NodeState.NODE_STATE_CONNECTED) &&
      JSON.stringify(others.map((n) => n.serverId).sort()) === JSON.stringify([...peers].sort())
    );
  };
  const cli = async (args: string[]) => {
    const r = await run(process.execPath, [CLI, '--url', base, '--token', net.token, '--json', ...args], { cwd: root, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dv-members-'));
    if (process.env['KEEP_TEST_DIRS']) console.log(`membership test data and logs: ${root}`);
    net = await startNetwork({
      root,
      nodes: 3,
      output: { dir: join(root, 'logs') },
      env: { LOG_LEVEL: 'info', NODE_HEARTBEAT_MS: String(HEARTBEAT_MS), NODE_DOWN_AFTER_MS: String(DOWN_AFTER_MS) },
    });
    base = net.gatewayUrl;
    setBearerToken(net.token);
    for (const n of net.nodes) {
      const c = client(n);
      ids.push((await callUnary(c, c.getNodeInfo, {}, { timeoutMs: 5000 })).serverId);
    }
    await eventually(async () => (await Promise.all(net.nodes.map((n: any, i: number) => seesAll(n, ids[i]!, ids.filter((_, j) => j !== i))))).every(Boolean), 20_000, '3 nodes connected');
  });

  afterAll(async () => {
    for (const c of clients.values()) c.close();
    await net?.stop();
    if (root && !process.env['KEEP_TEST_DIRS']) await rm(root, { recursive: true, force: true });
  });

  it('a node started at run time with one bootstrap address becomes known to all four', async () => {
    const started = Date.now();
    const d = await net.addNode({ env: { NODE_BOOTSTRAP: net.nodes[1].peerAddress } });
    const c = client(d);
    ids.push((await callUnary(c, c.getNodeInfo, {}, { timeoutMs: 5000 })).serverId);
    await eventually(
      async () => (await Promise.all(net.nodes.map((n: any, i: number) => seesAll(n, ids[i]!, ids.filter((_, j) => j !== i))))).every(Boolean),
      20_000,
      'all four list each other as connected',
    );
    const tookMs = Date.now() - started;
    // The gateway's view (node1): itself, then the three members with state, last-seen and since.
    const r = await request(`${base}/v1/nodes`, 'GET');
    expect(r.status).toBe(200);
    expect(r.json.nodes).toHaveLength(4);
    expect(r.json.nodes[0]).toMatchObject({ serverId: ids[0], state: 'self', address: net.nodes[0].peerAddress });
    for (const n of r.json.nodes.slice(1)) {
      expect(n).toMatchObject({ state: 'connected', serverId: expect.stringMatching(/^[a-z2-7]{32}$/) });
      expect(Date.parse(n.lastSeen)).toBeGreaterThan(started - 60_000);
      expect(Date.parse(n.since)).toBeGreaterThan(0);
    }
    expect(r.json.nodes.map((n: any) => n.serverId).sort()).toEqual([...ids].sort());
    expect(r.json.nodes.find((n: any) => n.serverId === ids[3]).address).toBe(d.peerAddress);
    console.log(`4th node known to all four ${tookMs} ms after its start began`);
  });

  it('sends a message to one node and broadcasts to all through the gateway (and the CLI); unknown target 404', async () => {
    const one = await request(`${base}/v1/messages`, 'POST', undefined, {});
    expect(one.status).toBe(400); // no body: no topic
    const post = (body: unknown) =>
      new Promise<{ status: number; json: any }>((resolve, reject) => {
        const data = Buffer.from(JSON.stringify(body));
        const u = new URL(`${base}/v1/messages`);
        const req = require('node:http').request(
          { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { authorization: `Bearer ${net.token}`, 'content-type': 'application/json', 'content-length': data.length } },
          (res: any) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
          },
        );
        req.on('error', reject);
        req.end(data);
      });
    const direct = await post({ to: ids[2], topic: 'test/direct', body: 'hello node3' });
    expect([direct.status, direct.json.recipients]).toEqual([201, [ids[2]]]);
    await eventually(async () => (await listMessages(net.nodes[2], 'test/direct')).length === 1, 10_000, 'node3 got the direct message');
    const got = (await listMessages(net.nodes[2], 'test/direct'))[0]!;
    expect([got.id, got.from, got.to, Buffer.from(got.body).toString()]).toEqual([direct.json.id, ids[0], ids[2], 'hello node3']);
    for (const i of [1, 3]) expect(await listMessages(net.nodes[i], 'test/direct')).toEqual([]);

    const all = await post({ topic: 'test/all', body: 'hello everyone' });
    expect(all.status).toBe(201);
    expect(all.json.recipients).toEqual([ids[1], ids[2], ids[3]].sort());
    await eventually(async () => (await Promise.all([1, 2, 3].map((i) => listMessages(net.nodes[i], 'test/all')))).every((l) => l.length === 1 && l[0]!.id === all.json.id), 10_000, 'broadcast everywhere');

    // A well-formed server ID (valid check characters) of no member: 404.
    const unknown = await post({ to: serverIdFromHash(randomBytes(32)), topic: 'test/x', body: 'nobody' });
    expect([unknown.status, unknown.json.error.code]).toEqual([404, 'not_found']);
    // A member's ID with one character changed: the check characters catch the typo, 400 (not 404).
    const id1 = ids[1]!;
    const typo = await post({ to: `${id1.slice(0, 7)}${id1[7] === 'q' ? 'r' : 'q'}${id1.slice(8)}`, topic: 'test/x', body: 'typo' });
    expect([typo.status, typo.json.error.code, typo.json.error.message]).toEqual([400, 'invalid_argument', expect.stringMatching(/typo/)]);
    const short = await post({ to: id1.slice(0, 31), topic: 'test/x', body: 'short' });
    expect([short.status, short.json.error.code]).toEqual([400, 'invalid_argument']);
    const badTopic = await post({ to: ids[1], topic: 'no spaces allowed', body: 'x' });
    expect(badTopic.status).toBe(400);

    // The gateway's node lists what it sent; ?topic and ?since filter.
    const listed = await request(`${base}/v1/messages?topic=test/all`, 'GET');
    expect(listed.json.messages.map((m: any) => [m.id, m.from, m.to, m.body])).toEqual([[all.json.id, ids[0], null, 'hello everyone']]);
    const later = await request(`${base}/v1/messages?since=${Date.now() + 60_000}`, 'GET');
    expect(later.json.messages).toEqual([]);

    // Large messages: a listing over the page budget (about 768 KiB of bodies) comes in pages (?after=).
    const big: string[] = [];
    for (let i = 0; i < 15; i++) {
      const r = await post({ to: ids[1], topic: 'test/big', body: String.fromCharCode(97 + i).repeat(60 * 1024) });
      expect(r.status).toBe(201);
      big.push(r.json.id);
    }
    let after: string | null = null;
    const paged: string[] = [];
    let pages = 0;
    do {
      const page: any = await request(`${base}/v1/messages?topic=test/big${after ? `&after=${after}` : ''}`, 'GET');
      expect(page.status).toBe(200);
      paged.push(...page.json.messages.map((m: any) => m.id));
      after = page.json.next;
      pages++;
    } while (after && pages < 10);
    expect([paged, pages]).toEqual([big, 2]);
    await eventually(async () => (await listMessages(net.nodes[1], 'test/big')).length >= 12, 10_000, 'node2 got the large messages (first page)');

    // The CLI: send to one, then list.
    const sent = await cli(['message', 'send', '--to', ids[1]!, 'test/cli', 'from the command line']);
    expect(sent.recipients).toEqual([ids[1]]);
    await eventually(async () => (await listMessages(net.nodes[1], 'test/cli')).length === 1, 10_000, 'node2 got the CLI message');
    const cliList = await cli(['message', 'list', '--topic', 'test/cli']);
    expect(cliList.map((m: any) => [m.id, m.body])).toEqual([[sent.id, 'from the command line']]);
    expect((await cli(['message', 'list', '--topic', 'test/big'])).map((m: any) => m.id)).toEqual(big); // every page
  });

  it('a SIGKILLed node is suspect, then down, on the others; restarted it is connected again', async () => {
    const victim = net.nodes[2];
    const id = ids[2]!;
    const watchers = [net.nodes[0], net.nodes[1], net.nodes[3]];
    const seen = watchers.map(() => [] as number[]);
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const states = await Promise.all(watchers.map((w) => stateOf(w, id).catch(() => undefined)));
        states.forEach((s, k) => {
          if (s !== undefined && seen[k]!.at(-1) !== s) seen[k]!.push(s);
        });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const killedAt = Date.now();
    await victim.kill();
    try {
      await eventually(async () => (await Promise.all(watchers.map((w) => stateOf(w, id)))).every((s) => s === NodeState.NODE_STATE_DOWN), 30_000, 'down everywhere');
      const downMs = Date.now() - killedAt;
      expect(downMs).toBeGreaterThanOrEqual(DOWN_AFTER_MS - 500);
      console.log(`SIGKILLed node down on all three after ${downMs} ms (NODE_DOWN_AFTER_MS ${DOWN_AFTER_MS})`);
      // Not live: no message can go to it.
      const c = client(net.nodes[0]);
      await expect(callUnary(c, c.sendMessage, { to: id, topic: 't', body: Buffer.from('x') }, { timeoutMs: 5000 })).rejects.toMatchObject({ code: 'unavailable' });
      await victim.start();
      await eventually(async () => (await Promise.all(watchers.map((w) => stateOf(w, id)))).every((s) => s === NodeState.NODE_STATE_CONNECTED), 30_000, 'connected again');
    } finally {
      watching = false;
      await watch;
    }
    for (const s of seen) expect(s).toEqual([NodeState.NODE_STATE_CONNECTED, NodeState.NODE_STATE_SUSPECT, NodeState.NODE_STATE_DOWN, NodeState.NODE_STATE_CONNECTED]);
    const r = await request(`${base}/v1/nodes`, 'GET');
    expect(r.json.nodes.find((n: any) => n.serverId === id)).toMatchObject({ state: 'connected' });
  });

  it('a node stopped gracefully (SIGTERM) is `left` at once, not suspect, and stays left', async () => {
    const leaver = net.nodes[3];
    const id = ids[3]!;
    const watchers = [net.nodes[0], net.nodes[1], net.nodes[2]];
    await eventually(async () => (await Promise.all(watchers.map((w) => stateOf(w, id)))).every((s) => s === NodeState.NODE_STATE_CONNECTED), 20_000, 'connected first');
    const seen = watchers.map(() => [] as number[]);
    let watching = true;
    let firstRound!: () => void;
    const watched = new Promise<void>((r) => (firstRound = r));
    const watch = (async () => {
      while (watching) {
        const states = await Promise.all(watchers.map((w) => stateOf(w, id).catch(() => undefined)));
        states.forEach((s, k) => {
          if (s !== undefined && seen[k]!.at(-1) !== s) seen[k]!.push(s);
        });
        firstRound();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await watched; // the watchers have seen it connected before the signal
    const t0 = Date.now();
    const stopping = leaver.stop();
    try {
      await eventually(async () => (await Promise.all(watchers.map((w) => stateOf(w, id)))).every((s) => s === NodeState.NODE_STATE_LEFT), 10_000, 'left everywhere');
      const leftMs = Date.now() - t0;
      console.log(`SIGTERMed node left on all three ${leftMs} ms after the signal`);
      expect(leftMs).toBeLessThan(3 * HEARTBEAT_MS + 2000); // the notice, not a timeout (polling every 200 ms)
      await stopping;
      await new Promise((r) => setTimeout(r, DOWN_AFTER_MS + 1000));
    } finally {
      watching = false;
      await watch;
      await stopping;
    }
    // Never through suspect or down: the leave notice arrived before any timeout, and the timeouts leave it alone.
    for (const s of seen) expect(s).toEqual([NodeState.NODE_STATE_CONNECTED, NodeState.NODE_STATE_LEFT]);
    const r = await request(`${base}/v1/nodes`, 'GET');
    expect(r.json.nodes.find((n: any) => n.serverId === id)).toMatchObject({ state: 'left' });
  });
});
