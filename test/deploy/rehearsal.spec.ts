/**
 * Local rehearsal of deploy/overlays/dev: every container of the rendered StatefulSet and Deployment is
 * started as a real process with exactly the environment the manifests give it (ConfigMap keys, downward
 * API, $(VAR) expansion), its volumes laid out as the kubelet would (the Secrets made by
 * deploy/make-node-secrets.mjs and projected per the items lists, subPathExpr, claims), plus the image's
 * ENV. What cannot exist on one machine is mapped, and only that:
 *   - each pod gets its own loopback address as its pod IP (binding 0.0.0.0 becomes binding that IP), and
 *     another one for the pod's own 127.0.0.1 (where crypto and storage listen), in a random 127.a
 *     range checked free, so the manifests' fixed ports can be kept even when runs overlap;
 *   - cluster DNS: a preload (passed by the launcher as VAULT_NODE_ARGS, which no app reads) answers the
 *     pods' stable names peer-node-<i>.peer-node.<ns>.svc.cluster.local with their pod IPs, and the
 *     headless Service's name peer-node.<ns>.svc.cluster.local with all of them (from a file, so a pod
 *     added later resolves everywhere, as the headless Service's records would);
 *   - mount paths become directories under a temp dir.
 * Init containers run first, to completion, as the kubelet runs them (node with the image's ENTRYPOINT
 * flags and the container's args), each time a pod starts.
 * Then: peers find each other by their advertised DNS names, a put/get goes through the gateway, every
 * node holds the copies, every probe the manifests define gets its answer (each native gRPC probe target
 * answers SERVING to a plain grpc.health.v1 Check on the pod IP, as the kubelet sends it; the health-only
 * listeners serve nothing else), the README's grpcurl calls work (with buf curl), and scaling the
 * StatefulSet to 4 as the README says adds a node the others discover. The vault key: the init container
 * seeds each pod's key claim from its Secret entry; online rotation and crypto-shredding work and write
 * only into the claim; a restarted pod keeps its rotated key (the init step does not copy the now stale
 * Secret over it) and opens its files; and the README's restore of a lost key claim (recovery key ->
 * Secret entry -> re-seed) brings the rotated key back.
 */
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { execFile } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, putSeeded, request, seededSha, setBearerToken, walk } from '../helpers';
import { DEPLOY, REPO, appOf, applyJsonPatch, expand, find, render, resolveEnv, type Obj } from './k8s';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startProcess } = require('../../tools/network.cjs');
const run = promisify(execFile);
const MiB = 1024 * 1024;
const BUF = join(REPO, 'node_modules/.bin/buf');

const HealthClient = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health');

/**
 * What the kubelet's native gRPC probe does: a plaintext grpc.health.v1.Health/Check of `service` ('' =
 * the whole server) to host:port, no reflection, no TLS. Resolves with the status, or `code <n>` on error.
 */
function healthCheck(address: string, service = ''): Promise<string> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise<string>((resolve) => {
    (client as any).Check({ service }, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: { status: string }) => {
      client.close();
      resolve(err ? `code ${err.code}` : res.status);
    });
  });
}

/** A unary call with an empty request message to `path` at `address`; resolves with its status code. */
function emptyCall(address: string, path: string): Promise<number> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<number>((resolve) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err) => {
      client.close();
      resolve(err ? err.code : grpc.status.OK);
    });
  });
}

jest.setTimeout(180_000);

/** The image's ENV (Dockerfile, runtime stage): part of every container's environment. */
function imageEnv(): Record<string, string> {
  const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const line of runtime.split('\n').filter((l) => l.startsWith('ENV '))) {
    for (const m of line.slice(4).matchAll(/([A-Z_]+)=(\S+)/g)) env[m[1]] = m[2];
  }
  return env;
}

/** The image's ENTRYPOINT (Dockerfile, runtime stage) without `node`: the flags every container's node runs with. */
function entrypointFlags(): string[] {
  const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
  const line = text.slice(text.lastIndexOf('\nFROM ')).split('\n').find((l) => l.startsWith('ENTRYPOINT '));
  const argv = JSON.parse(line!.slice('ENTRYPOINT '.length)) as string[];
  if (argv[0] !== 'node') throw new Error(`ENTRYPOINT does not start with node: ${line}`);
  return argv.slice(1);
}

/** The vault key fingerprint of a version-1 key file, as the crypto-service computes it (apps/crypto-service/README.md). */
function fingerprintOfKeyFile(text: string): string {
  const raw = Buffer.from(JSON.parse(text).key, 'base64');
  return createHash('sha256').update('distri-vault/fingerprint/v1\0').update(raw).digest('hex').slice(0, 16);
}

/**
 * A preload standing in for cluster DNS: dns.lookup / dns.promises.lookup (what grpc-js uses) answer the
 * names in the JSON file `hostsFile`, read at each lookup, so pods added later resolve everywhere.
 */
function dnsPreload(hostsFile: string): string {
  const code = `import dns from 'node:dns';
import { readFileSync } from 'node:fs';
const many = (h) => { const a = JSON.parse(readFileSync(${JSON.stringify(hostsFile)}, 'utf8'))[h]; return a && [].concat(a).map((address) => ({ address, family: 4 })); };
const one = (h) => { const a = many(h); return a && a[0]; };
const pl = dns.promises.lookup.bind(dns.promises);
dns.promises.lookup = async (h, o) => (many(h) ? ((o && o.all) ? many(h) : one(h)) : pl(h, o));
const prt = dns.promises.resolveTxt.bind(dns.promises);
dns.promises.resolveTxt = async (h) => { if (one(h)) throw Object.assign(new Error('no TXT'), { code: 'ENODATA' }); return prt(h); };
const l = dns.lookup;
dns.lookup = (h, o, cb) => { if (typeof o === 'function') { cb = o; o = {}; } const r = one(h); if (!r) return l(h, o, cb); const opts = typeof o === 'number' ? {} : (o || {}); process.nextTick(() => (opts.all ? cb(null, many(h)) : cb(null, r.address, 4))); };
`;
  return `--import=data:text/javascript;base64,${Buffer.from(code).toString('base64')}`;
}

/** True when `port` can be bound on `host` right now. */
function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A random 127.a prefix whose addresses 127.a.1.x and 127.a.2.x (x = 10..13, up to 4 nodes, and 100) have `ports` free: the pods
 * keep the manifests' fixed ports, so concurrent runs of this suite (several checkouts, npm test twice)
 * must not share addresses.
 */
async function freeLoopbackNet(ports: number[]): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const net = `127.${40 + Math.floor(Math.random() * 200)}`;
    const hostsToTry = [10, 11, 12, 13, 100].flatMap((x) => [`${net}.1.${x}`, `${net}.2.${x}`]);
    const free = await Promise.all(hostsToTry.flatMap((h) => ports.map((p) => canBind(h, p))));
    if (free.every(Boolean)) return net;
  }
  throw new Error('no free loopback addresses for the rehearsal');
}

describe('rehearsal of deploy/overlays/dev on loopback', () => {
  let root: string;
  let objects: Obj[];
  let ns: string;
  let sts: Obj;
  let secretsDir: string;
  const serverIds: Record<string, string> = {};
  const procs: any[] = [];
  const podIp: Record<string, string> = {};
  const podLoopback: Record<string, string> = {};
  const hosts: Record<string, string | string[]> = {};
  /** Files of the read-only projected Secret volumes, as laid out: path -> content. */
  const projected = new Map<string, string>();
  const projectedRoots = new Set<string>();
  const volumesOf = (pod: string) => join(root, 'pods', pod, 'volumes');
  let gatewayUrl: string;
  let gatewayEnv: Record<string, string>;
  let token: string;

  /** Runs make-node-secrets.mjs, as the README tells operators to, and records the server IDs. */
  async function makeSecrets(first: number, nodes: number): Promise<void> {
    const { stdout } = await run(process.execPath, [join(DEPLOY, 'make-node-secrets.mjs'), '--out', secretsDir, '--first', String(first), '--nodes', String(nodes)]);
    for (const m of stdout.matchAll(/^(peer-node-\d+): server ID ([a-z2-7]{32})$/gm)) serverIds[m[1]] = m[2];
  }

  /**
   * What `kubectl create secret generic <name> --from-file=<key>=<file>` (README) stores: key -> file content.
   * The README's command takes every node's identity.json / vault-key.json under the secrets directory.
   */
  function secretData(name: string, pods: string[]): Record<string, string> {
    if (name === 'distri-vault-network') return { 'network.secret': readFileSync(join(secretsDir, 'network.secret'), 'utf8') };
    const file = name === 'distri-vault-identities' ? 'identity.json' : 'vault-key.json';
    // An entry whose file is gone was left out of the Secret by the operator.
    return Object.fromEntries(pods.filter((p) => existsSync(join(secretsDir, p, file))).map((p) => [p, readFileSync(join(secretsDir, p, file), 'utf8')]));
  }

  /** Lays out a pod's volumes as the kubelet would and returns mountPath -> host directory per container. */
  function mountVolumes(w: Obj, pod: string, c: Obj, env: Record<string, string>): Record<string, string> {
    const spec = w.spec.template.spec;
    const out: Record<string, string> = {};
    for (const m of c.volumeMounts ?? []) {
      const volRoot = join(volumesOf(pod), m.name);
      const vol = (spec.volumes ?? []).find((v: Obj) => v.name === m.name);
      if (vol?.projected) {
        const mode = vol.projected.defaultMode;
        for (const src of vol.projected.sources) {
          const pods = Array.from({ length: w.spec.replicas }, (_, i) => `${w.metadata.name}-${i}`);
          const data = secretData(src.secret.name, pods);
          for (const item of src.secret.items) {
            const f = join(volRoot, item.path);
            if (!(item.key in data)) {
              if (!src.secret.optional) throw new Error(`Secret ${src.secret.name} has no key ${item.key}: the pod would not start`);
              // optional: a missing key is no file in the projection (and one removed from the Secret disappears).
              rmSync(f, { force: true });
              projected.delete(f);
              continue;
            }
            mkdirSync(join(f, '..'), { recursive: true });
            writeFileSync(f, data[item.key]);
            chmodSync(f, mode);
            projected.set(f, data[item.key]);
            projectedRoots.add(volRoot);
          }
        }
      } else if (vol?.secret) {
        // A Secret volume: every key of the Secret as a file.
        const data = secretData(vol.secret.secretName, []);
        mkdirSync(volRoot, { recursive: true });
        for (const [key, value] of Object.entries(data)) {
          const f = join(volRoot, key);
          writeFileSync(f, value);
          chmodSync(f, vol.secret.defaultMode);
          projected.set(f, value);
        }
        projectedRoots.add(volRoot);
      } else if (vol?.emptyDir) {
        mkdirSync(volRoot, { recursive: true });
      } else {
        // A claim (volumeClaimTemplates or persistentVolumeClaim): an empty, writable directory.
        const claims = [...(w.spec.volumeClaimTemplates ?? []).map((v: Obj) => v.metadata.name), ...(spec.volumes ?? []).filter((v: Obj) => v.persistentVolumeClaim).map((v: Obj) => v.name)];
        if (!claims.includes(m.name)) throw new Error(`volume ${m.name} is neither projected nor a claim`);
        mkdirSync(volRoot, { recursive: true });
      }
      out[m.mountPath] = m.subPathExpr ? join(volRoot, expand(m.subPathExpr, env)) : volRoot;
    }
    return out;
  }

  /** The pod's environment mapped onto this machine (see the file comment), nothing else changed. */
  function mapEnv(env: Record<string, string>, pod: string, mounts: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) {
      // 0.0.0.0 (alone, or as the host of host:port) is the pod IP; 127.0.0.1 the pod's own loopback.
      let x = v.replace(/^0\.0\.0\.0(?=:\d+$|$)/, podIp[pod]!).replace(/\b127\.0\.0\.1\b/g, podLoopback[pod]!);
      for (const [mountPath, dir] of Object.entries(mounts)) if (x === mountPath || x.startsWith(`${mountPath}/`)) x = dir + x.slice(mountPath.length);
      out[k] = x;
    }
    return out;
  }

  /**
   * Appends each process's lines to <root>/logs/<pod>-<container>.log. Synchronous and tolerant of lines
   * that arrive after the process exited or the directory was removed (the launcher's { dir } sink ends
   * its stream on exit and throws "write after end" on a late line).
   */
  function keepLog(procName: string, line: string): void {
    try {
      // No mkdir here: a line arriving after afterAll removed the directory must not re-create it.
      appendFileSync(join(root, 'logs', `${procName.replace(/\//g, '-')}.log`), `${line}\n`);
    } catch {
      /* the test's directory is gone: nothing to keep */
    }
  }

  /** Starts one container of a pod as a process; returns its mapped env. */
  async function startContainer(w: Obj, pod: string, c: Obj): Promise<{ env: Record<string, string>; proc: any }> {
    const env = resolveEnv(c, objects, { name: pod, namespace: ns });
    const mounts = mountVolumes(w, pod, c, env);
    const mapped = mapEnv(env, pod, mounts);
    const proc = await startProcess({
      name: `${pod}/${c.name}`,
      app: appOf(c),
      env: { ...imageEnv(), ...mapped, VAULT_NODE_ARGS: dnsPreload(join(root, 'cluster-dns.json')) },
      distDir: join(REPO, 'dist/apps'),
      output: keepLog,
      readyTimeoutMs: 60_000,
    });
    procs.push(proc);
    return { env: mapped, proc };
  }

  /**
   * Runs one init container to completion as the kubelet would: node with the image's ENTRYPOINT flags and
   * the container's args, the container's mapped environment, its volumes. Resolves with its exit code and
   * output (also kept in the logs directory); never rejects on a non-zero exit.
   */
  async function runInit(w: Obj, pod: string, c: Obj): Promise<{ code: number; out: string; env: Record<string, string> }> {
    const env = resolveEnv(c, objects, { name: pod, namespace: ns });
    const mapped = mapEnv(env, pod, mountVolumes(w, pod, c, env));
    const cwd = join(root, 'pods', pod, 'init-cwd');
    mkdirSync(cwd, { recursive: true });
    let code = 0;
    let out = '';
    try {
      const r = await run(process.execPath, [...entrypointFlags(), ...c.args], { cwd, env: { ...imageEnv(), ...mapped }, timeout: 30_000 });
      out = r.stdout + r.stderr;
    } catch (err: any) {
      code = typeof err.code === 'number' ? err.code : -1;
      out = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    }
    for (const line of out.split('\n').filter(Boolean)) keepLog(`${pod}/${c.name}`, line);
    return { code, out, env: mapped };
  }

  /** Each pod's init results (last start) and running processes. */
  const initRuns: Record<string, { code: number; out: string; env: Record<string, string> }[]> = {};
  const podProcs: Record<string, any[]> = {};

  /** Starts StatefulSet pod `i`: its init containers one after the other, then every container at once, as the kubelet does. */
  async function startNodePod(i: number): Promise<Record<string, Record<string, string>>> {
    const pod = `${sts.metadata.name}-${i}`;
    initRuns[pod] = [];
    for (const c of (sts.spec.template.spec.initContainers ?? []) as Obj[]) {
      const r = await runInit(sts, pod, c);
      initRuns[pod].push(r);
      if (r.code !== 0) throw new Error(`${pod}: init container ${c.name} exited ${r.code}: the pod would not start\n${r.out}`);
    }
    const started = await Promise.all(sts.spec.template.spec.containers.map((c: Obj) => startContainer(sts, pod, c)));
    podProcs[pod] = started.map((x) => x.proc);
    return Object.fromEntries(sts.spec.template.spec.containers.map((c: Obj, j: number) => [c.name, started[j].env]));
  }

  /** Stops every container of a pod (the peer-node first, as a pod's containers get SIGTERM together and the node leaves first). */
  async function stopNodePod(pod: string): Promise<void> {
    const [node, ...rest] = podProcs[pod]!;
    await node.stop();
    await Promise.all(rest.map((p: any) => p.stop()));
  }

  const fqdn = (i: number) => `${sts.metadata.name}-${i}.${sts.spec.serviceName}.${ns}.svc.cluster.local`;
  /** The headless Service's own name: one A record per pod. */
  const serviceName = () => `${sts.spec.serviceName}.${ns}.svc.cluster.local`;
  const nodeEnvs: Record<string, Record<string, Record<string, string>>> = {};

  /** 127.a: this run's part of the loopback range (other runs of this suite may be going on). */
  let net16 = '';

  function addPod(i: number): void {
    const pod = `${sts.metadata.name}-${i}`;
    podIp[pod] = `${net16}.1.${10 + i}`;
    podLoopback[pod] = `${net16}.2.${10 + i}`;
    hosts[fqdn(i)] = podIp[pod];
    hosts[serviceName()] = [...((hosts[serviceName()] as string[] | undefined) ?? []), podIp[pod]!];
    writeFileSync(join(root, 'cluster-dns.json'), JSON.stringify(hosts));
  }

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'dv-k8s-'));
    if (process.env['KEEP_TEST_DIRS']) console.log(`rehearsal data and logs: ${root}`);
    secretsDir = join(root, 'secrets');
    mkdirSync(join(root, 'logs'));
    objects = render(join(DEPLOY, 'overlays/dev')).objects;
    sts = find(objects, 'StatefulSet', 'peer-node');
    ns = sts.metadata.namespace;
    await makeSecrets(0, sts.spec.replicas);
    net16 = await freeLoopbackNet([7100, 7101, 7102, 7103, 7112, 7113, 8080]);
    for (let i = 0; i < sts.spec.replicas; i++) addPod(i);
    podIp.gateway = `${net16}.1.100`;
    podLoopback.gateway = `${net16}.2.100`;
    const started = await Promise.all(Array.from({ length: sts.spec.replicas }, (_, i) => startNodePod(i)));
    started.forEach((e, i) => (nodeEnvs[`peer-node-${i}`] = e));
    const gw = find(objects, 'Deployment', 'gateway');
    const g = await startContainer(gw, 'gateway', gw.spec.template.spec.containers[0]);
    gatewayEnv = g.env;
    gatewayUrl = `http://${g.env.GATEWAY_HOST}:${g.proc.port}`;
    token = readFileSync(join(g.env.GATEWAY_DATA_DIR, 'token'), 'utf8').trim();
    setBearerToken(token);
  });

  afterAll(async () => {
    setBearerToken(null);
    await Promise.all(procs.map((p) => p.stop()));
    if (root && !process.env['KEEP_TEST_DIRS']) rmSync(root, { recursive: true, force: true });
  });

  it('runs with the manifests’ ports and the mapped addresses only', () => {
    const n0 = nodeEnvs['peer-node-0'];
    expect(n0['peer-node']).toMatchObject({ NODE_HOST: podIp['peer-node-0'], NODE_CLIENT_PORT: '7100', NODE_PEER_PORT: '7101', NODE_ADVERTISE_ADDRESS: `${fqdn(0)}:7101` });
    expect(n0['peer-node'].NODE_DISCOVERY_DNS).toBe(`${serviceName()}:7101`);
    expect(n0['peer-node'].NODE_BOOTSTRAP).toBeUndefined();
    expect(n0['crypto-service']).toMatchObject({ CRYPTO_HOST: podLoopback['peer-node-0'], CRYPTO_PORT: '7102', CRYPTO_HEALTH_ADDRESS: `${podIp['peer-node-0']}:7112` });
    expect(n0['storage-service']).toMatchObject({ STORAGE_HOST: podLoopback['peer-node-0'], STORAGE_PORT: '7103', STORAGE_HEALTH_ADDRESS: `${podIp['peer-node-0']}:7113` });
    expect(gatewayEnv).toMatchObject({ GATEWAY_HOST: podIp.gateway, GATEWAY_PORT: '8080', GATEWAY_NODE_ADDRESS: `${fqdn(0)}:7100` });
  });

  it('each node runs with the identity from its Secret, and the peers find each other by their stable names', async () => {
    const nodes = await eventually(async () => {
      const r = await request(`${gatewayUrl}/v1/nodes`, 'GET');
      const list = r.json?.nodes ?? [];
      return list.filter((n: any) => n.state === 'connected').length === 2 ? list : null;
    }, 30_000, 'both peers connected');
    const byId = Object.fromEntries(nodes.map((n: any) => [n.serverId, n]));
    expect(byId[serverIds['peer-node-0']].state).toBe('self');
    expect(byId[serverIds['peer-node-1']]).toMatchObject({ state: 'connected', address: `${fqdn(1)}:7101` });
    expect(byId[serverIds['peer-node-2']]).toMatchObject({ state: 'connected', address: `${fqdn(2)}:7101` });
    expect((await request(`${gatewayUrl}/v1/node`, 'GET')).json).toMatchObject({ serverId: serverIds['peer-node-0'], peerAddress: `${fqdn(0)}:7101` });
  });

  it('puts and gets a file through the gateway, with a copy on every node’s data volume', async () => {
    const size = 3 * MiB + 1;
    const sha = await seededSha(size, 77);
    const put = await putSeeded(gatewayUrl, 'k8s/rehearsal.bin', size, 77);
    expect(put.status).toBe(201);
    expect(put.json).toMatchObject({ size, sha256: sha, version: 1 });
    const get = await request(`${gatewayUrl}/v1/files/k8s/rehearsal.bin`, 'GET');
    expect({ status: get.status, bytes: get.bytes, sha: get.sha256 }).toEqual({ status: 200, bytes: size, sha });
    const owner = serverIds['peer-node-0'];
    const chunks = async (pod: string) => (await walk(join(volumesOf(pod), 'data', owner, 'chunks'))).map((p) => basename(p)).sort();
    const c0 = await chunks('peer-node-0');
    expect(c0).toHaveLength(Math.ceil(size / MiB));
    // The put returned after NODE_WRITE_QUORUM (2) durable copies; the third follows in the background.
    const same = (pod: string) => eventually(async () => JSON.stringify(await chunks(pod)) === JSON.stringify(c0), 30_000, `every chunk on ${pod}`);
    await same('peer-node-1');
    await same('peer-node-2');
  });

  it('every native gRPC probe target answers SERVING on the pod IP, as the kubelet asks it; the gateway’s HTTP probes answer 200', async () => {
    let grpcProbes = 0;
    for (let i = 0; i < sts.spec.replicas; i++) {
      const pod = `peer-node-${i}`;
      for (const c of sts.spec.template.spec.containers as Obj[]) {
        for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe].filter(Boolean)) {
          // The kubelet dials <pod IP>:<port> in plaintext and sends Check { service }.
          expect(Object.keys(probe)).toContain('grpc');
          expect({ pod, container: c.name, port: probe.grpc.port, status: await healthCheck(`${podIp[pod]}:${probe.grpc.port}`, probe.grpc.service ?? '') }).toEqual({
            pod,
            container: c.name,
            port: probe.grpc.port,
            status: 'SERVING',
          });
          grpcProbes++;
        }
      }
    }
    expect(grpcProbes).toBeGreaterThanOrEqual(3 * 6);
    // ...and the same check fails where nothing health-serving listens (so this test can fail).
    expect(await healthCheck(`${podIp['peer-node-0']}:7102`)).toBe(`code ${grpc.status.UNAVAILABLE}`);
    const gw = find(objects, 'Deployment', 'gateway').spec.template.spec.containers[0];
    for (const probe of [gw.readinessProbe, gw.livenessProbe]) {
      const port = gw.ports.find((p: Obj) => p.name === probe.httpGet.port).containerPort;
      const r = await request(`http://${podIp.gateway}:${port}${probe.httpGet.path}`, 'GET', undefined, { authorization: '' });
      expect(r.status).toBe(200);
    }
  });

  it('the health-only listeners on the pod IP serve health and nothing else; the crypto and storage APIs stay on the pod’s loopback', async () => {
    const pod = 'peer-node-1';
    const env = nodeEnvs[pod]!;
    const cryptoHealth = env['crypto-service']!.CRYPTO_HEALTH_ADDRESS!;
    const storageHealth = env['storage-service']!.STORAGE_HEALTH_ADDRESS!;
    expect([cryptoHealth, storageHealth]).toEqual([`${podIp[pod]}:7112`, `${podIp[pod]}:7113`]);
    expect(await emptyCall(cryptoHealth, '/vault.crypto.v1.CryptoService/GetKeyInfo')).toBe(grpc.status.UNIMPLEMENTED);
    expect(await emptyCall(storageHealth, '/vault.storage.v1.StorageService/StatFolder')).toBe(grpc.status.UNIMPLEMENTED);
    // The APIs answer on the pod's loopback (where the peer-node calls them), not on the pod IP.
    const cryptoApi = `${env['crypto-service']!.CRYPTO_HOST}:${env['crypto-service']!.CRYPTO_PORT}`;
    expect(await emptyCall(cryptoApi, '/vault.crypto.v1.CryptoService/GetKeyInfo')).toBe(grpc.status.OK);
    expect(await emptyCall(`${podIp[pod]}:7102`, '/vault.crypto.v1.CryptoService/GetKeyInfo')).toBe(grpc.status.UNAVAILABLE);
    expect(await emptyCall(`${podIp[pod]}:7103`, '/vault.storage.v1.StorageService/StatFolder')).toBe(grpc.status.UNAVAILABLE);
  });

  it('the README’s grpcurl calls through a port-forward work (buf curl, same reflection): NodeService plaintext, PeerService over TLS with -insecure', async () => {
    // `kubectl port-forward pod/peer-node-1 7100 7101` lands on the pod's own network namespace, where the
    // peer-node listens on every address (NODE_HOST 0.0.0.0): here that is the pod IP.
    const node = `${podIp['peer-node-1']}`;
    const list = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--list-services', `http://${node}:7100`]);
    expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(['grpc.health.v1.Health', 'vault.node.v1.NodeService']);
    const nodes = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', `http://${node}:7100/vault.node.v1.NodeService/ListNodes`, '-d', '{}']);
    const ids = (JSON.parse(nodes.stdout).nodes as { serverId: string }[]).map((n) => n.serverId).sort();
    expect(ids).toEqual(expect.arrayContaining([serverIds['peer-node-0'], serverIds['peer-node-1'], serverIds['peer-node-2']]));
    const peer = await run(BUF, ['curl', '--protocol', 'grpc', '-k', '--list-services', `https://${node}:7101`]);
    expect(peer.stdout.split('\n').filter(Boolean).sort()).toEqual(['grpc.health.v1.Health', 'vault.peer.v1.PeerService']);
    const health = await run(BUF, ['curl', '--protocol', 'grpc', '-k', `https://${node}:7101/grpc.health.v1.Health/Check`, '-d', '{}']);
    expect(JSON.parse(health.stdout)).toEqual({ status: 'SERVING' });
    // The PeerService is TLS only: plaintext gets no answer from it.
    await expect(run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--list-services', `http://${node}:7101`])).rejects.toBeDefined();
  });

  /** This pod's key directory on its `vault-key` claim, as the crypto-service sees it (mapped). */
  const keyDirOf = (pod: string) => nodeEnvs[pod]!['crypto-service']!.CRYPTO_KEY_DIR!;
  const keyFileOf = (pod: string) => readFileSync(join(keyDirOf(pod), 'vault-key.json'), 'utf8');
  /** The JSON log lines of a pod's init container seed-vault-key at its last start. */
  const seedLog = (pod: string) =>
    initRuns[pod]![0]!.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; fingerprint?: string; kept?: string; secret?: string });
  let keyBefore = '';
  let rotated = '';

  it('the init container seeded each pod’s key claim from its own Secret entry; the crypto-service runs with that key, on the claim', async () => {
    expect((sts.spec.template.spec.initContainers as Obj[]).map((c) => c.name)).toEqual(['seed-vault-key']);
    for (let i = 0; i < sts.spec.replicas; i++) {
      const pod = `peer-node-${i}`;
      const secret = readFileSync(join(secretsDir, pod, 'vault-key.json'), 'utf8');
      // The crypto-service's key directory is on the claim, not in the Secret volume.
      expect(keyDirOf(pod)).toBe(join(volumesOf(pod), 'vault-key', 'keys'));
      expect(initRuns[pod]![0]!.env.CRYPTO_KEY_DIR).toBe(keyDirOf(pod));
      expect(keyFileOf(pod)).toBe(secret);
      expect(seedLog(pod)).toEqual([expect.objectContaining({ level: 30, msg: 'vault key seeded from the Secret', fingerprint: fingerprintOfKeyFile(secret) })]);
    }
    // Each pod got its own entry: three different keys.
    expect(new Set(Array.from({ length: sts.spec.replicas }, (_, i) => seedLog(`peer-node-${i}`)[0]!.fingerprint)).size).toBe(sts.spec.replicas);
    // The fingerprint the init step logs is the one the crypto-service reports (same key, same derivation).
    keyBefore = (await request(`${gatewayUrl}/v1/keys`, 'GET')).json.fingerprint;
    expect(keyBefore).toBe(seedLog('peer-node-0')[0]!.fingerprint);
  });

  it('rotates the vault key online and shreds a file (200, not 412): the keyring on the claim changes, the Secret does not', async () => {
    const pod = 'peer-node-0';
    const secretBefore = readFileSync(join(secretsDir, pod, 'vault-key.json'), 'utf8');
    // A file sealed under the Secret's key, shredded below.
    expect((await putSeeded(gatewayUrl, 'k8s/to-shred.bin', 256 * 1024 + 3, 78)).status).toBe(201);
    const rot = await request(`${gatewayUrl}/v1/keys/rotate`, 'POST');
    expect([rot.status, rot.json?.retiredFingerprints]).toEqual([200, [keyBefore]]);
    expect(rot.json.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(rot.json.fingerprint).not.toBe(keyBefore);
    expect(fingerprintOfKeyFile(keyFileOf(pod))).toBe(rot.json.fingerprint);
    // The old key was kept during the re-wrap, then retired: only the new key is left on the claim.
    expect(readdirSync(keyDirOf(pod)).filter((n) => n.startsWith('vault-key')).sort()).toEqual(['vault-key.json']);

    // Crypto-shredding: the second file is shredded; the first still reads back.
    const shred = await request(`${gatewayUrl}/v1/shred/k8s/to-shred.bin`, 'DELETE');
    expect([shred.status, shred.json?.removed, shred.json?.rotation?.versionsShredded, shred.json?.rotation?.retiredFingerprints]).toEqual([200, 1, 1, [rot.json.fingerprint]]);
    rotated = shred.json.rotation.fingerprint;
    expect(fingerprintOfKeyFile(keyFileOf(pod))).toBe(rotated);
    expect((await request(`${gatewayUrl}/v1/files/k8s/to-shred.bin`, 'GET')).status).toBe(404);
    const get = await request(`${gatewayUrl}/v1/files/k8s/rehearsal.bin`, 'GET');
    expect([get.status, get.sha256]).toEqual([200, await seededSha(3 * MiB + 1, 77)]);
    // The Secret entry (and its projection) is the original key: stale now, and untouched.
    expect(readFileSync(join(secretsDir, pod, 'vault-key.json'), 'utf8')).toBe(secretBefore);
    expect(fingerprintOfKeyFile(secretBefore)).toBe(keyBefore);
  });

  it('a restarted pod keeps its rotated key (the init step does not copy the stale Secret over it) and opens its files', async () => {
    const pod = 'peer-node-0';
    const keyFile = keyFileOf(pod);
    await stopNodePod(pod);
    nodeEnvs[pod] = await startNodePod(0);
    expect(keyFileOf(pod)).toBe(keyFile);
    expect(seedLog(pod)).toEqual([expect.objectContaining({ level: 30, kept: rotated, secret: keyBefore, msg: expect.stringContaining('the Secret is never copied over a key') })]);
    // The node loaded its index through the restarted crypto-service. Had the init step copied the Secret's
    // (original, retired) key over the claim's, the node would run with it: the rotated key's manifests
    // unreadable (garbage collection deleted the superseded manifests sealed under the original key; before it
    // existed they became readable again, the shredded file included: GET k8s/to-shred.bin answered 200).
    const get = await eventually(async () => {
      const r = await request(`${gatewayUrl}/v1/files/k8s/rehearsal.bin`, 'GET').catch(() => undefined);
      return r && r.status < 500 ? r : undefined;
    }, 60_000, 'the gateway reaches the restarted peer-node-0');
    expect([get!.status, get!.sha256]).toEqual([200, await seededSha(3 * MiB + 1, 77)]);
    expect((await request(`${gatewayUrl}/v1/keys`, 'GET')).json).toMatchObject({ fingerprint: rotated, previousFingerprints: [] });
    expect((await request(`${gatewayUrl}/v1/files/k8s/to-shred.bin`, 'GET')).status).toBe(404);
  });

  it('restores a lost key claim as the README says: recovery key exported in the container, written as the Secret entry, re-seeded', async () => {
    const pod = 'peer-node-0';
    const crypto = sts.spec.template.spec.containers.find((c: Obj) => c.name === 'crypto-service');
    // `kubectl exec peer-node-0 -c crypto-service -- node /app/dist/apps/crypto-service/main.js export-recovery-key`:
    // the command runs with the container's environment (CRYPTO_KEY_DIR on the claim).
    const cryptoMain = join(REPO, 'dist/apps/crypto-service/main.js');
    const recovery = (await run(process.execPath, [cryptoMain, 'export-recovery-key'], { env: { ...imageEnv(), ...nodeEnvs[pod]!['crypto-service']! } })).stdout.trim();
    expect(recovery).toMatch(/^DVRK1(-[A-Z2-7]{4}){14}$/);
    // The operator's offline copy: import into a new directory, then that file becomes the Secret entry.
    const fresh = join(root, 'restore', pod);
    const imp = execFile(process.execPath, [cryptoMain, 'import-recovery-key'], { env: { ...process.env, CRYPTO_KEY_DIR: fresh } });
    imp.stdin!.end(`${recovery}\n`);
    expect(await new Promise((r) => imp.once('exit', r))).toBe(0);
    const restored = readFileSync(join(fresh, 'vault-key.json'), 'utf8');
    expect(fingerprintOfKeyFile(restored)).toBe(rotated);
    writeFileSync(join(secretsDir, pod, 'vault-key.json'), restored); // kubectl create secret ... | kubectl apply -f -
    // The claim is lost (the pod and PVC deleted): a new, empty claim; the pod starts and re-seeds.
    await stopNodePod(pod);
    rmSync(join(volumesOf(pod), 'vault-key'), { recursive: true, force: true });
    expect(existsSync(keyDirOf(pod))).toBe(false);
    nodeEnvs[pod] = await startNodePod(0);
    expect(seedLog(pod)).toEqual([expect.objectContaining({ msg: 'vault key seeded from the Secret', fingerprint: rotated })]);
    const get = await eventually(async () => {
      const r = await request(`${gatewayUrl}/v1/files/k8s/rehearsal.bin`, 'GET').catch(() => undefined);
      return r && r.status < 500 ? r : undefined;
    }, 60_000, 'the gateway reaches the restarted peer-node-0');
    expect([get!.status, get!.sha256]).toEqual([200, await seededSha(3 * MiB + 1, 77)]);
    expect((await request(`${gatewayUrl}/v1/keys`, 'GET')).json.fingerprint).toBe(rotated);
  });

  it('the Secret entry may be removed once the claim is seeded: the pod restarts with its claim’s key; with neither, the init step stops the pod', async () => {
    const pod = 'peer-node-0';
    const keyFile = keyFileOf(pod);
    // kubectl create secret generic distri-vault-vault-keys without peer-node-0's entry | kubectl apply -f -
    rmSync(join(secretsDir, pod, 'vault-key.json'));
    await stopNodePod(pod);
    // Neither an entry nor a key on the claim (a lost claim): the init container fails, and writes no key.
    const claim = join(volumesOf(pod), 'vault-key');
    const aside = `${claim}.aside`;
    renameSync(claim, aside);
    const init = sts.spec.template.spec.initContainers[0];
    const failed = await runInit(sts, pod, init);
    expect(failed.code).toBe(1);
    expect(failed.out).toContain('is this pod\'s entry in the Secret distri-vault-vault-keys?');
    expect(existsSync(join(keyDirOf(pod), 'vault-key.json'))).toBe(false);
    rmSync(claim, { recursive: true, force: true });
    renameSync(aside, claim);
    // With the claim back, the pod starts on the claim's key alone.
    nodeEnvs[pod] = await startNodePod(0);
    expect(existsSync(join(volumesOf(pod), 'node-secrets', pod, 'keys', 'vault-key.json'))).toBe(false);
    expect(seedLog(pod)).toEqual([expect.objectContaining({ msg: 'vault key present: kept (no Secret entry for this pod; none is needed once seeded)', kept: rotated, secret: 'absent' })]);
    expect(keyFileOf(pod)).toBe(keyFile);
    const get = await eventually(async () => {
      const r = await request(`${gatewayUrl}/v1/files/k8s/rehearsal.bin`, 'GET').catch(() => undefined);
      return r && r.status < 500 ? r : undefined;
    }, 60_000, 'the gateway reaches the restarted peer-node-0');
    expect([get!.status, get!.sha256]).toEqual([200, await seededSha(3 * MiB + 1, 77)]);
  });

  it('writes nothing into the read-only Secret volumes (the processes run as root here, so this is checked, not enforced)', async () => {
    expect(projectedRoots.size).toBe(2 * sts.spec.replicas); // node-secrets and network-secret, per pod
    const now = (await Promise.all([...projectedRoots].map((r) => walk(r)))).flat().sort();
    expect(now).toEqual([...projected.keys()].sort());
    for (const f of now) expect(readFileSync(f, 'utf8')).toBe(projected.get(f));
  });

  it('scaling the StatefulSet to 4 as the README says adds a node the others discover', async () => {
    // README: make the new node's secrets, add its entries to both Secrets and both items lists, scale.
    await makeSecrets(3, 1);
    applyJsonPatch(
      sts,
      [
        { op: 'replace', path: '/spec/replicas', value: 4 },
        { op: 'add', path: '/spec/template/spec/volumes/0/projected/sources/0/secret/items/-', value: { key: 'peer-node-3', path: 'peer-node-3/identity/identity.json' } },
        { op: 'add', path: '/spec/template/spec/volumes/0/projected/sources/1/secret/items/-', value: { key: 'peer-node-3', path: 'peer-node-3/keys/vault-key.json' } },
      ],
      'scale',
    );
    addPod(3);
    // The new pod's name and IP appear in the cluster's DNS (the headless Service publishes it); the new
    // node finds the others by resolving the Service, they learn it from its Hello (and from their next
    // resolution) and dial it back.
    nodeEnvs['peer-node-3'] = await startNodePod(3);
    const nodes = await eventually(async () => {
      const r = await request(`${gatewayUrl}/v1/nodes`, 'GET');
      const list = r.json?.nodes ?? [];
      return list.filter((n: any) => n.state === 'connected').length === 3 ? list : null;
    }, 30_000, 'peer-node-3 connected to peer-node-0');
    expect(nodes.find((n: any) => n.serverId === serverIds['peer-node-3'])).toMatchObject({ state: 'connected', address: `${fqdn(3)}:7101` });
    const get = await request(`${gatewayUrl}/v1/files/k8s/rehearsal.bin`, 'GET');
    expect(get.status).toBe(200);
  });
});
