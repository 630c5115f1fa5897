#!/usr/bin/env node
/**
 * Runs a local distri_vault network on this machine from the built apps (dist/apps/<app>/main.js).
 *
 *   node tools/local.mjs [all|crypto-service|storage-service|peer-node|gateway]     (default: all)
 *
 * `npm start` runs it with `all` (after building); each app's Nx `serve` target runs it with that app's
 * name, so `npx nx run-many --target=serve` brings up the same network as four separate launchers: every
 * launcher starts its app's instances on the same fixed layout, and the peer-nodes retry until their
 * services and peers are up.
 *
 * Settings (environment, with defaults):
 *   VAULT_DIR        .vault      data root (relative to the current directory): node<i>/{keys,data,identity}
 *   VAULT_NODES      3           number of nodes
 *   VAULT_BASE_PORT  7000        node i listens on BASE+100*i + 0 (client), 1 (peer), 2 (crypto), 3 (storage)
 *   GATEWAY_HOST     127.0.0.1   interface of the HTTP gateway
 *   GATEWAY_PORT     8080        port of the HTTP gateway
 *   LOG_LEVEL        info        log level of every process
 *   VAULT_DIST_DIR   dist/apps   where the built apps are (<dir>/<app>/main.js)
 *   NO_COLOR         (unset)     set to disable coloured prefixes
 * Ctrl-C stops everything cleanly (a second Ctrl-C kills at once).
 */
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const { startNetwork, startApp, stopAll, renderLine, APPS } = require('./network.cjs');

const which = process.argv[2] ?? 'all';
if (which === '-h' || which === '--help' || (which !== 'all' && !(which in APPS))) {
  console.error(`usage: node tools/local.mjs [all|${Object.keys(APPS).join('|')}]`);
  process.exit(which === '-h' || which === '--help' ? 0 : 2);
}

function intSetting(name, def, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`local: ${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const settings = {
  root: resolve(process.env.VAULT_DIR || '.vault'),
  nodes: intSetting('VAULT_NODES', 3, 1, 9),
  basePort: intSetting('VAULT_BASE_PORT', 7000, 1, 64500),
  gatewayHost: process.env.GATEWAY_HOST || '127.0.0.1',
  gatewayPort: intSetting('GATEWAY_PORT', 8080, 0, 65535),
  logLevel: process.env.LOG_LEVEL || 'info',
};

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93, 95];
function paint(procName, text) {
  if (!color) return text;
  const m = /^node(\d+)/.exec(procName);
  const c = m ? COLORS[(Number(m[1]) - 1) % COLORS.length] : 97;
  return text.replace(/^\[[^\]]*\]/, (p) => `\u001b[${c}m${p}\u001b[0m`);
}
const output = (procName, line) => process.stdout.write(paint(procName, renderLine(procName, line)) + '\n');

let stopping = false;
/** What is up (a network or one app's processes): stopped in order first, then any stragglers. */
let active = null;
function onSignal(sig) {
  if (stopping) {
    console.error(`\nlocal: ${sig} again, killing everything`);
    process.exit(130); // network.cjs SIGKILLs the children on exit
  }
  stopping = true;
  console.error(`\nlocal: ${sig}, stopping (Ctrl-C again to kill at once)`);
  Promise.resolve(active && active.stop())
    .then(() => stopAll())
    .then(
    () => process.exit(0),
    () => process.exit(1),
  );
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

const common = {
  root: settings.root,
  nodes: settings.nodes,
  basePort: settings.basePort,
  gatewayHost: settings.gatewayHost,
  gatewayPort: settings.gatewayPort,
  env: { LOG_LEVEL: settings.logLevel },
  distDir: process.env.VAULT_DIST_DIR ? resolve(process.env.VAULT_DIST_DIR) : undefined,
  output,
};

function banner(network) {
  const url = network.gatewayUrl;
  const lines = [
    '',
    `distri_vault local network is up: ${network.nodes.length} node(s), data in ${settings.root}`,
    `  gateway  ${url}`,
    ...network.nodes.map(
      (n) => `  ${n.name}    client ${n.clientAddress}  peer ${n.peerAddress}  crypto ${n.cryptoAddress}  storage ${n.storageAddress}`,
    ),
    '',
    'Try (the gateway wants the access token it created on first start):',
    `  H="Authorization: Bearer $(cat ${relative(process.cwd(), join(settings.root, 'gateway', 'token')) || join(settings.root, 'gateway', 'token')})"`,
    `  curl -H "$H" -T file ${url}/v1/files/docs/file.txt`,
    `  curl -H "$H" ${url}/v1/files/docs/file.txt -o out`,
    `  curl -H "$H" ${url}/v1/files`,
    `  curl -H "$H" ${url}/v1/nodes`,
    `  npx buf curl --protocol grpc --http2-prior-knowledge --list-services http://${network.nodes[0].clientAddress}`,
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  console.log(lines.join('\n'));
}

/** Reports a process that exits while the network should be up (its last lines were already shown). */
function watch(procs) {
  for (const p of procs) {
    if (!p) continue;
    p.exited.then(({ code, signal }) => {
      if (!stopping) console.error(`local: ${p.name} exited (code ${code}, signal ${signal})`);
    });
  }
}

try {
  if (which === 'all') {
    const network = await startNetwork(common);
    active = network;
    watch([network.gateway, ...network.nodes.flatMap((n) => [n.procs.crypto, n.procs.storage, n.procs.peer])]);
    if (!stopping) banner(network);
  } else {
    const app = await startApp(common, which);
    const { procs } = app;
    active = app;
    watch(procs);
    if (!stopping) {
      const where = procs.map((p) => `${p.name} ${Object.values(p.ports).map((port) => `127.0.0.1:${port}`).join(' ')}`).join(', ');
      console.log(`\n${which} is up (${procs.length} process(es)): ${where}. Ctrl-C stops it.\n`);
    }
  }
} catch (err) {
  if (!stopping) {
    console.error(`\nlocal: start-up failed: ${err && err.message ? err.message : err}`);
    await stopAll();
    process.exit(1);
  }
}

// The children's pipes keep this process alive; if every child is gone on its own, say so and fail.
process.on('beforeExit', () => {
  if (!stopping) {
    console.error('local: every process has exited');
    process.exitCode = 1;
  }
});
