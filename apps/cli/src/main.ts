#!/usr/bin/env node
/**
 * distri-vault: the command-line client of the gateway. `distri-vault --help` lists the commands.
 * Exit codes: 0 ok, 1 other failure, 2 usage or invalid argument, 3 not found, 4 not authenticated or
 * not allowed, 5 gateway or network unavailable, 6 data failed verification.
 */
import { basename } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { addKeysCommands } from './keys';
import { SingleBar, Presets } from 'cli-progress';
import { CliError, encodePath, EXIT, type FileView, GatewayClient } from './client';
import { progressAllowed, resolveConnection } from './config';

interface GlobalOpts {
  url?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
  progress?: boolean;
}

const out = (s: string) => process.stdout.write(`${s}\n`);

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n');
}

/** A progress bar on stderr (only on a terminal, never with --json), with rate and time left. */
function bar(opts: GlobalOpts, label: string): { start(total: number): void; update(n: number): void; stop(): void } {
  if (opts.json || opts.progress === false || !progressAllowed()) return { start() {}, update() {}, stop() {} };
  const b = new SingleBar({ format: `${label} [{bar}] {percentage}% {done}/{size} {rate} eta {eta_formatted}`, stream: process.stderr, hideCursor: true, etaBuffer: 50, fps: 10 }, Presets.shades_classic);
  let started = 0;
  let total = 0;
  return {
    start(t) {
      total = t;
      started = Date.now();
      b.start(t, 0, { done: human(0), size: human(t), rate: '' });
    },
    update(n) {
      const s = (Date.now() - started) / 1000;
      b.update(Math.min(n, total), { done: human(n), size: human(total), rate: s > 0 ? `${human(n / s)}/s` : '' });
    },
    stop() {
      b.stop();
    },
  };
}

function fileRows(files: FileView[]): string[][] {
  return [['VERSION', 'SIZE', 'UPDATED', 'PATH'], ...files.map((f) => [String(f.version), f.deleted ? '(deleted)' : human(f.size), f.updated, f.path])];
}

function version(value: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(value)) throw new CliError(`invalid version ${JSON.stringify(value)}: want a positive integer`, EXIT.usage, 'invalid_argument');
  return Number(value);
}

/** The gateway's replication health (GET /v1/replication). */
interface ReplicationView {
  replicas: number;
  pass: { finished: string; durationMs: number } | null;
  totals: { folders: number; objects: number; underReplicated: number; soleCopy: number };
  folders: { folder: string; own: boolean; objects: number; underReplicated: number; soleCopy: number }[];
  backlog: { objects: number; bytes: number };
}

/** The gateway's recovery status (GET /v1/recover). */
interface RecoveryView {
  phase: 'idle' | 'syncing' | 'indexing' | 'verifying' | 'done' | 'failed' | 'unknown';
  run: number;
  trigger: string;
  peersDone: number;
  peersTotal: number;
  chunks: number;
  manifests: number;
  bytes: number;
  bytesPerSecond: number;
  files: number;
  chunksChecked: number;
  chunksMissing: number;
  errors: number;
  errorMessages: string[];
  durationMs: number;
}

function describeRecovery(s: RecoveryView): string {
  const body = `${s.phase}: ${s.peersDone}/${s.peersTotal} peers, ${s.chunks} chunks and ${s.manifests} manifests fetched (${human(s.bytes)}, ${human(s.bytesPerSecond)}/s), ${s.files} files, ${s.chunksChecked} chunks checked`;
  const tail = s.chunksMissing ? `, ${s.chunksMissing} chunks missing` : '';
  return `${body}${tail}, ${s.errors} errors in ${(s.durationMs / 1000).toFixed(1)} s`;
}

/** Builds the program; `run` parses and executes it. */
export function buildProgram(): Command {
  const program = new Command('distri-vault')
    .description('Client of a distri_vault gateway: store, fetch and list encrypted, replicated files.')
    .addOption(new Option('--url <url>', 'gateway URL (env DISTRI_VAULT_URL; default http://127.0.0.1:8080)'))
    .addOption(new Option('--token <token>', 'bearer token (env DISTRI_VAULT_TOKEN)'))
    .addOption(new Option('--token-file <file>', 'file holding the token (env DISTRI_VAULT_TOKEN_FILE; default .vault/gateway/token)'))
    .option('--json', 'machine-readable output on stdout')
    .option('--no-progress', 'never draw progress bars')
    .showHelpAfterError('(distri-vault --help lists the commands)')
    .exitOverride();
  const ctx = () => {
    const opts = program.opts<GlobalOpts>();
    const conn = resolveConnection(opts);
    return { opts, client: new GatewayClient(conn.url, conn.token) };
  };
  const print = (opts: GlobalOpts, value: unknown, text: () => string) => out(opts.json ? JSON.stringify(value) : text());

  program
    .command('put')
    .description('upload a local file (or - for stdin) as a new version')
    .argument('<local>', 'local file, or - for stdin')
    .argument('[remote]', 'path in the vault (default: the file name)')
    .action(async (local: string, remote: string | undefined) => {
      const { opts, client } = ctx();
      const target = remote ?? basename(local);
      if (local === '-' && !remote) throw new CliError('give the remote path when reading stdin', EXIT.usage, 'invalid_argument');
      const p = bar(opts, 'put');
      const { stat } = await import('node:fs/promises');
      if (local !== '-') p.start((await stat(local).catch(() => ({ size: 0 }))).size);
      try {
        const f = await client.upload(local, target, (n) => p.update(n));
        p.stop();
        print(opts, f, () => `stored ${f.path} v${f.version} (${human(f.size)}, sha256 ${f.sha256})`);
      } finally {
        p.stop();
      }
    });

  program
    .command('get')
    .description('download a file (the latest version, or --version N) to a local file or - for stdout')
    .argument('<remote>', 'path in the vault')
    .argument('[local]', 'local file, or - for stdout (default: the file name)')
    .option('-v, --version <n>', 'a specific version')
    .action(async (remote: string, local: string | undefined, cmd: { version?: string }) => {
      const { opts, client } = ctx();
      const dest = local ?? basename(remote);
      const p = bar(dest === '-' ? { ...opts, progress: false } : opts, 'get');
      try {
        const r = await client.download(remote, cmd.version ? version(cmd.version) : undefined, dest, (size) => p.start(size), (n) => p.update(n));
        p.stop();
        if (dest !== '-') print(opts, { ...r, file: dest }, () => `wrote ${dest} (${r.path} v${r.version}, ${human(r.size)}, sha256 verified)`);
      } finally {
        p.stop();
      }
    });

  program
    .command('ls')
    .description('list the latest version of every file, optionally under a prefix')
    .argument('[prefix]', 'only paths starting with this')
    .action(async (prefix: string | undefined) => {
      const { opts, client } = ctx();
      const files: FileView[] = [];
      let after: string | null = '';
      while (after !== null) {
        const q = new URLSearchParams({ limit: '1000' });
        if (prefix) q.set('prefix', prefix);
        if (after) q.set('after', after);
        const page: { files: FileView[]; next: string | null } = await client.json('GET', `/v1/files?${q}`);
        files.push(...page.files);
        after = page.next;
      }
      print(opts, files, () => (files.length ? table(fileRows(files)) : '(no files)'));
    });

  program
    .command('rm')
    .description('delete a file (its history is kept: see versions and restore)')
    .argument('<remote>', 'path in the vault')
    .action(async (remote: string) => {
      const { opts, client } = ctx();
      await client.json('DELETE', `/v1/files/${encodePath(remote)}`);
      print(opts, { path: remote, deleted: true }, () => `deleted ${remote}`);
    });

  program
    .command('versions')
    .description("list a file's versions, oldest first")
    .argument('<remote>', 'path in the vault')
    .action(async (remote: string) => {
      const { opts, client } = ctx();
      const r: { versions: FileView[] } = await client.json('GET', `/v1/versions/${encodePath(remote)}`);
      print(opts, r.versions, () => table(fileRows(r.versions)));
    });

  program
    .command('restore')
    .description('make an old version the newest one')
    .argument('<remote>', 'path in the vault')
    .argument('<version>', 'the version to restore')
    .action(async (remote: string, v: string) => {
      const { opts, client } = ctx();
      const f: FileView = await client.json('POST', `/v1/versions/${encodePath(remote)}?version=${version(v)}`);
      print(opts, f, () => `restored ${f.path} v${v} as v${f.version}`);
    });

  program
    .command('nodes')
    .description('the nodes of the network as the gateway\'s node sees them')
    .action(async () => {
      const { opts, client } = ctx();
      const r: { nodes: { serverId: string; address: string; state: string; lastSeen: string | null; since?: string | null }[] } = await client.json('GET', '/v1/nodes');
      print(opts, r.nodes, () =>
        table([['STATE', 'ADDRESS', 'SERVER ID', 'LAST SEEN', 'SINCE'], ...r.nodes.map((n) => [n.state, n.address, n.serverId || '-', n.lastSeen ?? '-', n.since ?? '-'])]),
      );
    });

  const message = program.command('message').description('send messages between nodes over their control streams, and list them');
  const sendMessage = async (topic: string, text: string, cmd: { to?: string }) => {
    const { opts, client } = ctx();
    const r: { id: string; recipients: string[] } = await client.json('POST', '/v1/messages', { ...(cmd.to ? { to: cmd.to } : {}), topic, body: text });
    print(opts, r, () => `sent ${r.id} to ${r.recipients.length} ${r.recipients.length === 1 ? 'node' : 'nodes'}${r.recipients.length ? `: ${r.recipients.join(', ')}` : ''}`);
  };
  // `send` (top level) and `message send` are the same command.
  for (const parent of [program, message]) {
    parent
      .command('send')
      .description(parent === program ? "send TEXT to one member (--to) or every live member (same as: message send)" : "send TEXT from the gateway's node to one member (--to) or to every live member")
      .option('--to <serverId>', 'recipient server ID (default: broadcast to every connected or suspect member)')
      .argument('<topic>', 'topic: 1-64 characters of [A-Za-z0-9._:/-]')
      .argument('<text>', 'the message (UTF-8, at most 64 KiB)')
      .action(sendMessage);
  }
  message
    .command('list')
    .description("messages the gateway's node sent and received (the most recent 1000), oldest first")
    .option('--since <time>', 'only messages received at or after this time (ISO-8601 or Unix ms)')
    .option('--topic <topic>', 'only this topic')
    .action(async (cmd: { since?: string; topic?: string }) => {
      const { opts, client } = ctx();
      type Msg = { id: string; from: string; to: string | null; topic: string; body: string; received: string };
      const r: { messages: Msg[] } = { messages: [] };
      let after: string | null = null;
      do {
        const q = new URLSearchParams();
        if (cmd.since) q.set('since', cmd.since);
        if (cmd.topic) q.set('topic', cmd.topic);
        if (after) q.set('after', after);
        const qs = q.toString();
        const page: { messages: Msg[]; next: string | null } = await client.json('GET', `/v1/messages${qs ? `?${qs}` : ''}`);
        r.messages.push(...page.messages);
        after = page.next;
      } while (after);
      print(opts, r.messages, () => table([['RECEIVED', 'FROM', 'TO', 'TOPIC', 'BODY'], ...r.messages.map((m) => [m.received, m.from, m.to ?? '*', m.topic, m.body.replace(/[\u0000-\u001f\u007f]/g, ' ')])]));
    });

  program
    .command('status')
    .description('is the gateway ready, which node serves it, how many peers are connected, replication health per folder')
    .action(async () => {
      const { opts, client } = ctx();
      const node: { serverId: string; peerAddress: string; protocolVersion: number; chunkSize: number; replicas: number } = await client.json('GET', '/v1/node');
      const r: { nodes: { state: string }[] } = await client.json('GET', '/v1/nodes');
      const replication: ReplicationView = await client.json('GET', '/v1/replication');
      const connected = r.nodes.filter((n) => n.state === 'connected').length;
      const s = { ...node, peers: r.nodes.length - 1, connected, writable: connected >= node.replicas - 1, replication };
      const short = (id: string) => (id.length > 12 ? `${id.slice(0, 12)}…` : id);
      print(opts, s, () => {
        const rows = [
          ['node', s.serverId],
          ['peer address', s.peerAddress],
          ['peers', `${connected} connected of ${s.peers} known`],
          ['replicas', `${s.replicas} (${s.writable ? 'enough peers to write' : `writes need ${s.replicas - 1} connected peers`})`],
          ['chunk size', human(s.chunkSize)],
          ['backlog', `${replication.backlog.objects} copies (${human(replication.backlog.bytes)}) owed to peers`],
        ];
        const t = replication.totals;
        if (!replication.pass) rows.push(['replication', 'no repair pass yet']);
        else rows.push(['replication', `${t.underReplicated} of ${t.objects} objects below ${replication.replicas} copies, ${t.soleCopy} sole copies (pass at ${replication.pass.finished})`]);
        const folders = replication.folders.length
          ? `\n\n${table([
              ['FOLDER', 'OBJECTS', 'BELOW R', 'SOLE COPY'],
              ...replication.folders.map((f) => [`${short(f.folder)}${f.own ? ' (own)' : ''}`, String(f.objects), String(f.underReplicated), String(f.soleCopy)]),
            ])}`
          : '';
        return table(rows) + folders;
      });
    });

  program
    .command('recover')
    .description("restore the home node's folder from its peers: starts a recovery (or joins the running one); --watch follows it to the end")
    .option('-w, --watch', 'follow the progress (bar on a terminal, one line per change otherwise) until it ends; exit 6 if it failed')
    .option('--interval <ms>', 'polling interval with --watch', '500')
    .action(async (cmd: { watch?: boolean; interval: string }) => {
      const { opts, client } = ctx();
      const started: RecoveryView & { joined: boolean } = await client.json('POST', '/v1/recover');
      if (!cmd.watch) {
        print(opts, started, () => `${started.joined ? 'joined' : 'started'} recovery #${started.run}: ${describeRecovery(started)}\n(follow it with: distri-vault recover --watch, or GET /v1/recover)`);
        return;
      }
      const interval = Math.max(50, Number(cmd.interval) || 500);
      const fancy = !opts.json && opts.progress !== false && progressAllowed();
      const b = fancy
        ? new SingleBar({ format: 'recover [{bar}] {phase} peers {peers} {done} {rate} files {files} errors {errors}', stream: process.stderr, hideCursor: true, fps: 10 }, Presets.shades_classic)
        : undefined;
      let last = '';
      let st: RecoveryView = started;
      const show = (s: RecoveryView) => {
        // Bar: peers synced while syncing, chunks checked while verifying.
        const [value, total] = s.phase === 'verifying' || s.phase === 'done' ? [s.chunksChecked, Math.max(s.chunksChecked, 1)] : [s.peersDone, Math.max(s.peersTotal, 1)];
        const payload = { phase: s.phase.padEnd(9), peers: `${s.peersDone}/${s.peersTotal}`, done: human(s.bytes), rate: `${human(s.bytesPerSecond)}/s`, files: s.files, errors: s.errors };
        if (b) b.update(value, payload);
        else if (!opts.json) {
          const line = `${s.phase} peers ${s.peersDone}/${s.peersTotal} chunks ${s.chunks} manifests ${s.manifests} ${human(s.bytes)} files ${s.files} errors ${s.errors}`;
          if (line !== last) process.stderr.write(`${line}\n`);
          last = line;
        }
        return total;
      };
      b?.start(Math.max(started.peersTotal, 1), 0, {});
      try {
        for (;;) {
          const total = show(st);
          b?.setTotal(total);
          if (st.run === started.run && (st.phase === 'done' || st.phase === 'failed')) break;
          if (st.run > started.run) break;
          await new Promise((r) => setTimeout(r, interval));
          st = await client.json('GET', '/v1/recover');
        }
      } finally {
        b?.stop();
      }
      print(opts, st, () => `recovery #${st.run} ${describeRecovery(st)}`);
      if (st.phase === 'failed') throw new CliError(`recovery failed: ${st.errorMessages.at(-1) ?? 'see the node log'}`, EXIT.dataLoss, 'data_loss');
    });

  const token = program.command('token').description('create, list and revoke bearer tokens (needs a read-write token)');
  token
    .command('create')
    .description('create a token; its secret is shown only now')
    .argument('[name]', 'a label', 'cli')
    .option('--read-only', 'may only read (GET, HEAD)')
    .action(async (name: string, cmd: { readOnly?: boolean }) => {
      const { opts, client } = ctx();
      const t: { id: string; name: string; scope: string; token: string } = await client.json('POST', '/v1/tokens', { name, scope: cmd.readOnly ? 'read' : 'write' });
      print(opts, t, () => `created ${t.scope} token ${t.id} (${t.name}); it is shown only once:\n${t.token}`);
    });
  token
    .command('list')
    .description('every live token (no secrets)')
    .action(async () => {
      const { opts, client } = ctx();
      const r: { tokens: { id: string; name: string; scope: string; created: string }[] } = await client.json('GET', '/v1/tokens');
      print(opts, r.tokens, () => table([['ID', 'SCOPE', 'CREATED', 'NAME'], ...r.tokens.map((t) => [t.id, t.scope, t.created, t.name])]));
    });
  token
    .command('revoke')
    .description('revoke a token at once')
    .argument('<id>', 'the token ID (from token list)')
    .action(async (id: string) => {
      const { opts, client } = ctx();
      await client.json('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
      print(opts, { id, revoked: true }, () => `revoked ${id}`);
    });

  addKeysCommands(program, { ctx, print });
  return program;
}

/** Runs the CLI on `argv` (process.argv shape); resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? EXIT.ok : EXIT.usage;
    }
    const e = err instanceof CliError ? err : new CliError((err as Error).message ?? String(err), EXIT.failure);
    if (program.opts<GlobalOpts>().json) process.stderr.write(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
    else process.stderr.write(`distri-vault: ${e.message}\n`);
    return e.exitCode;
  }
}

if (require.main === module) {
  void run(process.argv).then((code) => {
    process.exitCode = code;
  });
}
