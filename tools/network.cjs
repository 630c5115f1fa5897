'use strict';
/**
 * Local network launcher: starts real app processes (`node dist/apps/<app>/main.js`) on loopback, waits
 * for each one's `{"msg":"listening","name":...,"port":N}` log line, and stops them again.
 * Used by `tools/local.mjs` (npm start, nx serve) and by the system tests in test/ (via require).
 *
 *   const { startNetwork } = require('../tools/network.cjs');
 *   const net = await startNetwork({ root: tmpDir, output: 'silent' });
 *   // net.gatewayUrl, net.nodes[0].clientAddress, net.nodes[1].kill(), await net.nodes[1].start(), ...
 *   await net.stop();
 *
 * Every node gets <root>/network.secret (the network secret, created once, 0600) as NODE_NETWORK_SECRET_FILE
 * (nodeEnv(i) can override it, e.g. to start an outsider).
 * Layout of node i (1-based): dir = <root>/node<i> with keys/, data/ and identity/. With a fixed
 * basePort, node i listens on basePort + 100*i + {0: NodeService (client), 1: PeerService, 2: crypto,
 * 3: storage}; with basePort 0 every process binds port 0 and the launcher learns the ports from the logs.
 *
 * Children never outlive the launcher: they are SIGKILLed on the parent's 'exit', and each child also
 * watches its parent pid (a tiny preload) and SIGTERMs itself if the parent dies without cleaning up
 * (SIGKILL, a crashed Jest worker).
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const REPO = path.join(__dirname, '..');
const GLIBC_TUNABLES = 'glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824';
// V8 flags for every app process. --single-threaded-gc: each process moves ~1 MiB Buffers per chunk and
// collects often; with 7-10 processes on a 2-core box, V8's parallel GC helper threads only add
// synchronisation and context switches. Measured (bench, 256 MiB, R=3): upload 74.6 -> 62.8 CPU-s/GB,
// download 25.6 -> 19.6 CPU-s/GB summed over all processes. --max-semi-space-size=2 (MiB): V8 grows the
// young generation to 16 MiB semi-spaces (heapTotal ~53-67 MiB per busy process); the chunk bytes live
// outside the heap, so a small young generation costs no measurable CPU (issue #8: 256 MiB, R=3, two runs
// each, 69.0/73.2 vs 70.1/79.4 CPU-s/GB upload, 19.8/18.5 vs 19.1/21.0 download) and lowers every
// process's peak RSS by 10-30 MiB (heapTotal 23-36 MiB). Node refuses --single-threaded-gc in
// NODE_OPTIONS: deployments pass both on the command line (the Dockerfile's ENTRYPOINT does).
// VAULT_V8_FLAGS (space-separated) replaces the list, e.g. for measurements ('' = none).
const V8_FLAGS = ['--single-threaded-gc', '--max-semi-space-size=2'];
const v8Flags = (env) => (env.VAULT_V8_FLAGS !== undefined ? env.VAULT_V8_FLAGS.split(' ').filter(Boolean) : V8_FLAGS);
const LOG_LINES = 200;
const KILL_AFTER_MS = 5000;

/** The four apps, with the names their "listening" lines carry. */
const APPS = {
  'crypto-service': { short: 'crypto', listens: ['crypto'] },
  'storage-service': { short: 'storage', listens: ['storage'] },
  'peer-node': { short: 'peer', listens: ['node-client', 'node-peer'] },
  gateway: { short: 'gateway', listens: ['gateway'] },
};

// Preloaded into every child: process.ppid changes when the parent dies (the child is re-parented).
const PARENT_GUARD =
  'const p=process.ppid;setInterval(()=>{if(process.ppid!==p)process.kill(process.pid,"SIGTERM")},500).unref();';
const GUARD_ARG = `--import=data:text/javascript;base64,${Buffer.from(PARENT_GUARD).toString('base64')}`;

const live = new Set();
let exitHookInstalled = false;
function trackChild(child) {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

const LEVELS = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'service', 'msg', 'v']);

/**
 * Renders one log line compactly: `[node1/peer] 12:00:01.234 INFO  listening name=node-peer port=7101`.
 * JSON (pino) lines show level, message and up to 8 other fields; anything else is shown as is.
 */
function renderLine(prefix, line) {
  let obj;
  if (line.startsWith('{')) {
    try {
      obj = JSON.parse(line);
    } catch {
      obj = undefined;
    }
  }
  if (!obj || typeof obj !== 'object') return `[${prefix}] ${line}`;
  const time = typeof obj.time === 'string' ? obj.time.slice(11, 23) : '';
  const level = (LEVELS[obj.level] ?? String(obj.level ?? '')).padEnd(5);
  const fields = [];
  for (const [k, v] of Object.entries(obj)) {
    if (HIDDEN.has(k) || v === undefined) continue;
    if (fields.length === 8) {
      fields.push('…');
      break;
    }
    let s;
    if (k === 'err' && v && typeof v === 'object') s = `${v.type ?? 'Error'}: ${v.message ?? ''}`;
    else s = typeof v === 'string' ? v : JSON.stringify(v);
    if (s.length > 120) s = `${s.slice(0, 117)}...`;
    fields.push(`${k}=${/\s/.test(s) ? JSON.stringify(s) : s}`);
  }
  return `[${prefix}] ${time} ${level} ${obj.msg ?? ''}${fields.length ? ' ' + fields.join(' ') : ''}`;
}

function lineSinkFor(output, procName) {
  if (output === 'silent') return { write() {}, close() {} };
  if (output === undefined || output === 'inherit-prefixed') {
    return { write: (line) => process.stdout.write(renderLine(procName, line) + '\n'), close() {} };
  }
  if (typeof output === 'function') return { write: (line) => output(procName, line), close() {} };
  if (output && typeof output === 'object' && typeof output.dir === 'string') {
    fs.mkdirSync(output.dir, { recursive: true });
    const stream = fs.createWriteStream(path.join(output.dir, `${procName.replace(/\//g, '-')}.log`), { flags: 'a' });
    return { write: (line) => stream.write(line + '\n'), close: () => stream.end() };
  }
  throw new Error(`unknown output option: ${JSON.stringify(output)}`);
}

/**
 * Spawns one app process and resolves once it has logged "listening" for every name it serves.
 * Rejects (after SIGKILLing the child) on exit or timeout, with its last log lines in the message.
 * Resolves to a Proc: { name, app, child, port, ports, logs(), running, exited, stop(signal) }.
 */
function startProcess({ name, app, env, distDir, output, readyTimeoutMs }) {
  const spec = APPS[app];
  if (!spec) throw new Error(`unknown app ${app}`);
  const script = path.join(distDir, app, 'main.js');
  if (!fs.existsSync(script)) {
    return Promise.reject(new Error(`${name}: ${script} does not exist; build it first (node tools/build.mjs ${app})`));
  }
  const lines = [];
  const sink = lineSinkFor(output, name);
  // VAULT_NODE_ARGS: extra node flags for every app process (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
  const extraArgs = (env.VAULT_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, ['--enable-source-maps', ...v8Flags(env), ...extraArgs, GUARD_ARG, script], {
    cwd: REPO,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: a terminal's Ctrl-C reaches only the launcher, which then stops each child once,
    // in order (the apps treat a second signal as "exit now").
    detached: true,
  });
  trackChild(child);
  const ports = {};
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  const proc = {
    name,
    app,
    child,
    /** The first port it announced (for peer-node: its client port). */
    port: 0,
    /** Every announced port by listening name, e.g. { 'node-client': 7100, 'node-peer': 7101 }. */
    ports,
    /** Last ~200 lines of stdout and stderr, for failure messages. */
    logs: () => lines.join('\n'),
    /** True until the process has exited. */
    get running() {
      return exitInfo === null;
    },
    /** Resolves with { code, signal } once the process has exited. */
    exited,
    /** Sends `signal` (SIGTERM by default) and resolves once it exited; SIGKILL after 5 s. */
    stop: (signal = 'SIGTERM') => stopChild(child, exited, () => exitInfo !== null, signal),
  };

  let onListening = () => {};
  const keep = (line) => {
    lines.push(line);
    if (lines.length > LOG_LINES) lines.shift();
    sink.write(line);
  };
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    keep(line);
    if (line.startsWith('{') && line.includes('"listening"')) {
      try {
        const o = JSON.parse(line);
        if (o.msg === 'listening' && spec.listens.includes(o.name) && typeof o.port === 'number') {
          ports[o.name] = o.port;
          if (!proc.port) proc.port = o.port;
          onListening();
        }
      } catch {
        /* not a log line of ours */
      }
    }
  });
  readline.createInterface({ input: child.stderr }).on('line', keep);
  exited.then(() => setImmediate(() => sink.close()));

  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!err) return resolve(proc);
      if (exitInfo === null) child.kill('SIGKILL');
      // Let the last buffered lines arrive before quoting them.
      setTimeout(() => reject(Object.assign(new Error(`${err}\n--- last log lines of ${name} ---\n${proc.logs()}`), { proc })), 50);
    };
    const timer = setTimeout(() => finish(`${name} did not log "listening" within ${readyTimeoutMs} ms`), readyTimeoutMs);
    onListening = () => {
      if (spec.listens.every((n) => ports[n] !== undefined)) finish();
    };
    child.once('error', (e) => finish(`${name} could not be spawned: ${e.message}`));
    exited.then(({ code, signal }) => finish(`${name} exited (code ${code}, signal ${signal}) before it was listening`));
  });
}

function stopChild(child, exited, hasExited, signal) {
  if (hasExited()) return exited.then(() => undefined);
  try {
    child.kill(signal);
  } catch {
    /* already gone */
  }
  if (signal === 'SIGKILL') return exited.then(() => undefined);
  const force = setTimeout(() => {
    if (!hasExited()) child.kill('SIGKILL');
  }, KILL_AFTER_MS);
  return exited.then(() => clearTimeout(force));
}

function normalize(options) {
  if (!options || typeof options.root !== 'string' || !options.root) throw new Error('startNetwork: options.root is required');
  const nodes = options.nodes ?? 3;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) throw new Error(`nodes must be 1..9, got ${nodes}`);
  const basePort = options.basePort ?? 0;
  if (!Number.isInteger(basePort) || basePort < 0 || basePort + 100 * nodes + 3 > 65535) throw new Error(`bad basePort ${basePort}`);
  const extra = options.env ?? {};
  const env = { ...process.env, LOG_LEVEL: 'info', ...extra };
  if (!('GLIBC_TUNABLES' in extra) && !process.env.GLIBC_TUNABLES) env.GLIBC_TUNABLES = GLIBC_TUNABLES;
  return {
    root: path.resolve(options.root),
    nodes,
    basePort,
    gateway: options.gateway ?? true,
    gatewayPort: options.gatewayPort ?? 0,
    gatewayHost: options.gatewayHost ?? '127.0.0.1',
    env,
    nodeEnv: options.nodeEnv ?? (() => ({})),
    output: options.output ?? 'inherit-prefixed',
    readyTimeoutMs: options.readyTimeoutMs ?? 30000,
    distDir: path.resolve(options.distDir ?? path.join(REPO, 'dist/apps')),
  };
}

/** Ports of node i in a fixed layout (basePort > 0), or all 0. */
function fixedPorts(o, i) {
  const b = o.basePort ? o.basePort + 100 * i : 0;
  return b ? { client: b, peer: b + 1, crypto: b + 2, storage: b + 3 } : { client: 0, peer: 0, crypto: 0, storage: 0 };
}

const addr = (port) => `127.0.0.1:${port}`;

/**
 * The network secret every node of a local network shares (README "How peers authenticate"):
 * <root>/network.secret, 32 random bytes as hex, mode 0600, created once if missing. Returns its path.
 */
function ensureNetworkSecret(root) {
  const file = path.join(root, 'network.secret');
  fs.mkdirSync(root, { recursive: true });
  try {
    fs.writeFileSync(file, require('node:crypto').randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
  return file;
}

/** Builds the NodeHandle of node i; its processes are started by handle.start(). */
function makeNode(o, i, allNodes) {
  const dir = path.join(o.root, `node${i}`);
  const node = {
    index: i,
    name: `node${i}`,
    dir,
    keysDir: path.join(dir, 'keys'),
    dataDir: path.join(dir, 'data'),
    identityDir: path.join(dir, 'identity'),
    clientAddress: '',
    peerAddress: '',
    cryptoAddress: '',
    storageAddress: '',
    /** Current processes; replaced in place when start() restarts one. */
    procs: { crypto: null, storage: null, peer: null },
    ports: fixedPorts(o, i),
  };
  const procOpts = (short, app, env) => ({
    name: `${node.name}/${short}`,
    app,
    env: { ...o.env, ...env },
    distDir: o.distDir,
    output: o.output,
    readyTimeoutMs: o.readyTimeoutMs,
  });
  const isUp = (p) => p !== null && p.running;

  /** Starts whichever of the node's three processes is not running, on the ports they had before. */
  node.start = async () => {
    for (const d of [node.keysDir, node.dataDir, node.identityDir]) fs.mkdirSync(d, { recursive: true });
    const secretFile = ensureNetworkSecret(o.root);
    const services = [];
    if (!isUp(node.procs.crypto)) {
      services.push(
        startProcess(
          procOpts('crypto', 'crypto-service', { CRYPTO_HOST: '127.0.0.1', CRYPTO_PORT: String(node.ports.crypto), CRYPTO_KEY_DIR: node.keysDir, ...o.nodeEnv(i) }),
        ).then((p) => {
          node.procs.crypto = p;
          node.ports.crypto = p.port;
          node.cryptoAddress = addr(p.port);
        }),
      );
    }
    if (!isUp(node.procs.storage)) {
      services.push(
        startProcess(
          procOpts('storage', 'storage-service', { STORAGE_HOST: '127.0.0.1', STORAGE_PORT: String(node.ports.storage), STORAGE_DATA_DIR: node.dataDir, ...o.nodeEnv(i) }),
        ).then((p) => {
          node.procs.storage = p;
          node.ports.storage = p.port;
          node.storageAddress = addr(p.port);
        }),
      );
    }
    const settled = await Promise.allSettled(services);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      await node.stop();
      throw failed.reason;
    }
    if (!isUp(node.procs.peer)) {
      // With fixed ports every other node's address is known up front; with port 0, only of those started.
      const bootstrap = allNodes
        .filter((n) => n !== node)
        .map((n) => (n.ports.peer ? addr(n.ports.peer) : ''))
        .filter(Boolean)
        .join(',');
      try {
        const p = await startProcess(
          procOpts('peer', 'peer-node', {
            NODE_HOST: '127.0.0.1',
            NODE_CLIENT_PORT: String(node.ports.client),
            NODE_PEER_PORT: String(node.ports.peer),
            NODE_IDENTITY_DIR: node.identityDir,
            NODE_CRYPTO_ADDRESS: node.cryptoAddress,
            NODE_STORAGE_ADDRESS: node.storageAddress,
            NODE_BOOTSTRAP: bootstrap,
            NODE_NETWORK_SECRET_FILE: secretFile,
            ...o.nodeEnv(i),
          }),
        );
        node.procs.peer = p;
        node.ports.client = p.ports['node-client'];
        node.ports.peer = p.ports['node-peer'];
        node.clientAddress = addr(node.ports.client);
        node.peerAddress = addr(node.ports.peer);
      } catch (err) {
        await node.stop();
        throw err;
      }
    }
  };

  /** Stops the peer-node, then crypto and storage; SIGKILL after 5 s. */
  node.stop = async (signal = 'SIGTERM') => {
    if (node.procs.peer) await node.procs.peer.stop(signal);
    await Promise.all([node.procs.crypto, node.procs.storage].filter(Boolean).map((p) => p.stop(signal)));
  };

  /** SIGKILLs all three at once (a crash); resolves once they are gone. */
  node.kill = () => Promise.all(Object.values(node.procs).filter(Boolean).map((p) => p.stop('SIGKILL'))).then(() => undefined);

  if (o.basePort) {
    node.clientAddress = addr(node.ports.client);
    node.peerAddress = addr(node.ports.peer);
    node.cryptoAddress = addr(node.ports.crypto);
    node.storageAddress = addr(node.ports.storage);
  }
  return node;
}

/** The gateway's first token, saved under <root>/gateway/token on its first start; null if absent. */
function readToken(root) {
  try {
    return fs.readFileSync(path.join(root, 'gateway', 'token'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/**
 * Starts a whole local network: per node crypto + storage (in parallel), then its peer-node; nodes one
 * after another (port 0: each learns the peer addresses of those before it); the gateway last, on node1.
 * On any failure everything already started is stopped and the promise rejects with the failing
 * process's last log lines.
 *
 * options: { root, nodes = 3, basePort = 0, gatewayPort = 0, gatewayHost = '127.0.0.1', gateway = true,
 *   env, nodeEnv(i), output = 'inherit-prefixed' | 'silent' | { dir } | (procName, line) => void,
 *   readyTimeoutMs = 30000, distDir = <repo>/dist/apps }
 * The gateway keeps its bearer tokens in <root>/gateway/ (its first token in <root>/gateway/token).
 * Resolves to { gatewayUrl, token, gateway: Proc | null, nodes: NodeHandle[], addNode({ env }), startGateway(), stop() }.
 * Crash one process: `net.nodes[i].procs.storage.stop('SIGKILL')` (or .crypto, .peer, `net.gateway.stop('SIGKILL')`);
 * restart it with `net.nodes[i].start()` (starts whichever of the node's processes is down, on its old ports)
 * or `net.startGateway()`.
 */
async function startNetwork(options) {
  const o = normalize(options);
  const nodes = [];
  for (let i = 1; i <= o.nodes; i++) nodes.push(makeNode(o, i, nodes));
  let gateway = null;
  let stopped = null;
  const network = {
    gatewayUrl: null,
    /** The gateway's first read-write bearer token (<root>/gateway/token), or null if that file is gone. */
    token: null,
    gateway: null,
    nodes,
    /**
     * Starts one more node at run time (node<N+1>) and resolves with its handle once it is listening.
     * By default it is bootstrapped from every running node's peer address, like the others; extra.env
     * overrides its variables last (e.g. NODE_BOOTSTRAP with one member's address).
     */
    async addNode(extra = {}) {
      if (stopped) throw new Error('addNode: the network is stopped');
      if (nodes.length >= 9) throw new Error('at most 9 nodes');
      const env = extra.env ?? {};
      const node = makeNode({ ...o, nodeEnv: (j) => ({ ...o.nodeEnv(j), ...env }) }, nodes.length + 1, nodes);
      nodes.push(node);
      await node.start();
      return node;
    },
    /** Stops the gateway, then every node (SIGTERM, SIGKILL after 5 s). Safe to call twice. */
    stop() {
      if (!stopped) {
        stopped = (async () => {
          if (gateway) await gateway.stop();
          await Promise.all(nodes.map((n) => n.stop()));
        })();
      }
      return stopped;
    },
  };
  /**
   * Starts the gateway unless it is running; a restart (after a crash or stop) reuses the port it had, so
   * gatewayUrl stays valid. Resolves with its Proc.
   */
  network.startGateway = async () => {
    if (stopped) throw new Error('startGateway: the network is stopped');
    if (gateway && gateway.running) return gateway;
    const port = gateway ? gateway.port : o.gatewayPort;
    gateway = await startProcess({
      name: 'gateway',
      app: 'gateway',
      env: { ...o.env, GATEWAY_HOST: o.gatewayHost, GATEWAY_PORT: String(port), GATEWAY_NODE_ADDRESS: nodes[0].clientAddress, GATEWAY_DATA_DIR: path.join(o.root, 'gateway') },
      distDir: o.distDir,
      output: o.output,
      readyTimeoutMs: o.readyTimeoutMs,
    });
    network.gateway = gateway;
    const host = o.gatewayHost === '0.0.0.0' || o.gatewayHost === '::' ? '127.0.0.1' : o.gatewayHost;
    network.gatewayUrl = `http://${host.includes(':') ? `[${host}]` : host}:${gateway.port}`;
    network.token = readToken(o.root);
    return gateway;
  };
  try {
    for (const node of nodes) await node.start();
    if (o.gateway) await network.startGateway();
  } catch (err) {
    await network.stop();
    throw err;
  }
  return network;
}

/**
 * Starts every instance of one app in the fixed layout (options.basePort > 0), without waiting for the
 * other apps: peer-nodes get their services' and all peers' addresses and retry until those are up; the
 * gateway points at node1's client port. Used by `tools/local.mjs <app>` (one Nx serve target per app).
 * Resolves to { procs: Proc[], stop() }.
 */
async function startApp(options, app) {
  const o = normalize(options);
  if (!o.basePort) throw new Error('startApp needs a fixed basePort: the apps find each other by port');
  if (!APPS[app]) throw new Error(`unknown app ${app}; one of ${Object.keys(APPS).join(', ')}`);
  const procs = [];
  const stop = () => Promise.all(procs.map((p) => p.stop())).then(() => undefined);
  const start = (opts) =>
    startProcess({ distDir: o.distDir, output: o.output, readyTimeoutMs: o.readyTimeoutMs, ...opts, env: { ...o.env, ...opts.env } }).then((p) => {
      procs.push(p);
      return p;
    });
  try {
    if (app === 'gateway') {
      await start({
        name: 'gateway',
        app,
        env: { GATEWAY_HOST: o.gatewayHost, GATEWAY_PORT: String(o.gatewayPort), GATEWAY_NODE_ADDRESS: addr(fixedPorts(o, 1).client), GATEWAY_DATA_DIR: path.join(o.root, 'gateway') },
      });
    } else {
      const all = Array.from({ length: o.nodes }, (_, k) => k + 1);
      const settled = await Promise.allSettled(
        all.map((i) => {
          const p = fixedPorts(o, i);
          const dir = path.join(o.root, `node${i}`);
          const sub = { 'crypto-service': 'keys', 'storage-service': 'data', 'peer-node': 'identity' }[app];
          fs.mkdirSync(path.join(dir, sub), { recursive: true });
          const env =
            app === 'crypto-service'
              ? { CRYPTO_HOST: '127.0.0.1', CRYPTO_PORT: String(p.crypto), CRYPTO_KEY_DIR: path.join(dir, 'keys') }
              : app === 'storage-service'
                ? { STORAGE_HOST: '127.0.0.1', STORAGE_PORT: String(p.storage), STORAGE_DATA_DIR: path.join(dir, 'data') }
                : {
                    NODE_HOST: '127.0.0.1',
                    NODE_CLIENT_PORT: String(p.client),
                    NODE_PEER_PORT: String(p.peer),
                    NODE_IDENTITY_DIR: path.join(dir, 'identity'),
                    NODE_NETWORK_SECRET_FILE: ensureNetworkSecret(o.root),
                    NODE_CRYPTO_ADDRESS: addr(p.crypto),
                    NODE_STORAGE_ADDRESS: addr(p.storage),
                    NODE_BOOTSTRAP: all
                      .filter((j) => j !== i)
                      .map((j) => addr(fixedPorts(o, j).peer))
                      .join(','),
                  };
          return start({ name: `node${i}/${APPS[app].short}`, app, env: { ...env, ...o.nodeEnv(i) } });
        }),
      );
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      procs.sort((a, b) => a.name.localeCompare(b.name));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { procs, stop };
}

/**
 * Stops every process this launcher started that is still running (SIGTERM, SIGKILL after 5 s), whatever
 * state its network is in (even half started). For signal handlers.
 */
function stopAll(signal = 'SIGTERM') {
  return Promise.all(
    [...live].map((child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      return stopChild(child, exited, () => child.exitCode !== null || child.signalCode !== null, signal);
    }),
  ).then(() => undefined);
}

module.exports = { startNetwork, startApp, startProcess, stopAll, renderLine, readToken, ensureNetworkSecret, APPS, GLIBC_TUNABLES };
