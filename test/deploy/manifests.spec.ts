/**
 * deploy/ without a cluster: every object of the base and of each overlay validates against the
 * Kubernetes schemas (kubernetes-models), and the checks schemas cannot make hold: ports, probes and
 * Service targets agree with the environment the apps read; every variable set is read and every variable
 * read is set (and parses with the app's own config schema); selectors match; discovery names agree with
 * the headless Service; overlays patch objects that exist; containers are locked down; no secret material
 * is committed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadCryptoConfig } from '../../apps/crypto-service/src/config';
import { loadGatewayConfig } from '../../apps/gateway/src/config';
import { readConfig as readNodeConfig } from '../../apps/peer-node/src/config';
import { loadStorageConfig } from '../../apps/storage-service/src/config';
import {
  DEPLOY,
  KUSTOMIZATIONS,
  appEnvVars,
  appOf,
  applyJsonPatch,
  expand,
  find,
  podSpec,
  readKustomization,
  render,
  resolveEnv,
  selects,
  type Obj,
} from './k8s';

const APPS = ['peer-node', 'crypto-service', 'storage-service', 'gateway'];
/**
 * Variables whose defaults suit a laptop, not a pod (loopback binds, relative paths, fixed local ports,
 * no peers): the manifests must set these. Every other variable has a default the app's own schema
 * accepts (checked below), so tunables added later do not have to be in the manifests.
 */
const REQUIRED: Record<string, string[]> = {
  'peer-node': ['NODE_HOST', 'NODE_CLIENT_PORT', 'NODE_PEER_PORT', 'NODE_ADVERTISE_ADDRESS', 'NODE_IDENTITY_DIR', 'NODE_NETWORK_SECRET_FILE', 'NODE_TLS_DIR', 'NODE_CRYPTO_ADDRESS', 'NODE_STORAGE_ADDRESS', 'NODE_DISCOVERY_DNS', 'NODE_REPLICAS', 'LOG_LEVEL'],
  'crypto-service': ['CRYPTO_HOST', 'CRYPTO_PORT', 'CRYPTO_HEALTH_ADDRESS', 'CRYPTO_KEY_DIR', 'LOG_LEVEL'],
  'storage-service': ['STORAGE_HOST', 'STORAGE_PORT', 'STORAGE_HEALTH_ADDRESS', 'STORAGE_DATA_DIR', 'LOG_LEVEL'],
  gateway: ['GATEWAY_HOST', 'GATEWAY_PORT', 'GATEWAY_NODE_ADDRESS', 'GATEWAY_DATA_DIR', 'LOG_LEVEL'],
};
const CONFIG_READERS: Record<string, (env: NodeJS.ProcessEnv) => unknown> = {
  'peer-node': readNodeConfig,
  'crypto-service': loadCryptoConfig,
  'storage-service': loadStorageConfig,
  gateway: loadGatewayConfig,
};

/** kubernetes-models class of an apiVersion/kind, e.g. apps/v1 StatefulSet. */
function modelOf(o: Obj): new (data: Obj) => { validate(): void } {
  const mod = require(`kubernetes-models/${o.apiVersion}/${o.kind}`); // eslint-disable-line @typescript-eslint/no-require-imports
  return mod[o.kind];
}

/**
 * The plaintext gRPC servers an app binds on the pod IP that serve grpc.health.v1, from its environment,
 * as `port -> what`: the targets a native gRPC probe may use. (The peer-node's NodeService serves health
 * and is plaintext; its PeerService serves health too but speaks TLS, which the kubelet's probe cannot.
 * crypto and storage keep their APIs on loopback and serve health on their *_HEALTH_ADDRESS.)
 */
function grpcHealthTargets(app: string, env: Record<string, string>): Record<number, string> {
  const onPodIp = (host: string) => host === '0.0.0.0' || host === '::';
  const split = (a: string) => ({ host: a.slice(0, a.lastIndexOf(':')), port: Number(a.slice(a.lastIndexOf(':') + 1)) });
  if (app === 'peer-node') return onPodIp(env.NODE_HOST) ? { [Number(env.NODE_CLIENT_PORT)]: 'NodeService' } : {};
  const health = app === 'crypto-service' ? env.CRYPTO_HEALTH_ADDRESS : app === 'storage-service' ? env.STORAGE_HEALTH_ADDRESS : '';
  if (!health) return {};
  const { host, port } = split(health);
  return onPodIp(host) ? { [port]: 'health-only listener' } : {};
}

/** Every port a container's app binds (API, health, peer), for collision checks inside a pod. */
function boundPorts(app: string, env: Record<string, string>): number[] {
  const port = (a: string | undefined) => (a ? [Number(a.slice(a.lastIndexOf(':') + 1))] : []);
  if (app === 'peer-node') return [Number(env.NODE_CLIENT_PORT), Number(env.NODE_PEER_PORT)];
  if (app === 'crypto-service') return [Number(env.CRYPTO_PORT), ...port(env.CRYPTO_HEALTH_ADDRESS)];
  if (app === 'storage-service') return [Number(env.STORAGE_PORT), ...port(env.STORAGE_HEALTH_ADDRESS)];
  return [Number(env.GATEWAY_PORT)];
}

const PROBES = ['startupProbe', 'readinessProbe', 'livenessProbe'] as const;

const rendered = Object.fromEntries(KUSTOMIZATIONS.map((k) => [k, render(join(DEPLOY, k))]));
const OVERLAYS = ['overlays/dev', 'overlays/prod'];

/** Every container of every workload with its pod spec, workload and pod names for ordinal `i`. */
function containersOf(objects: Obj[]) {
  return objects.flatMap((w) => {
    const spec = podSpec(w);
    if (!spec) return [];
    const podName = w.kind === 'StatefulSet' ? `${w.metadata.name}-0` : `${w.metadata.name}-5d8f7c9b4-x2k7p`;
    return (spec.containers as Obj[]).map((c) => ({ w, spec, c, pod: { name: podName, namespace: w.metadata.namespace } }));
  });
}

/** Every init container of every workload, as containersOf. */
function initContainersOf(objects: Obj[]) {
  return objects.flatMap((w) => {
    const spec = podSpec(w);
    if (!spec) return [];
    return ((spec.initContainers ?? []) as Obj[]).map((c) => ({ w, spec, c, pod: { name: `${w.metadata.name}-0`, namespace: w.metadata.namespace } }));
  });
}

/** The environment variables a `node -e` script reads (`process.env.NAME` or `process.env['NAME']`). */
function scriptEnvVars(script: string): string[] {
  return [...new Set([...script.matchAll(/process\.env(?:\.([A-Z_][A-Z0-9_]*)|\[['"]([A-Z_][A-Z0-9_]*)['"]\])/g)].map((m) => m[1] ?? m[2]))].sort();
}

/**
 * The files of a projected volume a mount makes visible: the items' paths under the mount's subPath (or
 * all of them without one), as `secretName:key`.
 */
function visibleItems(spec: Obj, m: Obj, env: Record<string, string>): string[] {
  const vol = (spec.volumes as Obj[]).find((v) => v.name === m.name);
  if (!vol?.projected) return [];
  const sub = m.subPathExpr ? expand(m.subPathExpr, env) : (m.subPath ?? '');
  return (vol.projected.sources as Obj[]).flatMap((src) =>
    (src.secret.items as Obj[]).filter((it) => !sub || it.path.startsWith(`${sub}/`)).map((it) => `${src.secret.name}:${it.key}`),
  );
}

describe.each(KUSTOMIZATIONS)('deploy/%s', (k) => {
  const { objects } = rendered[k];

  it('validates every object against the Kubernetes schemas', () => {
    expect(objects.length).toBeGreaterThan(5);
    for (const o of objects) {
      const Model = modelOf(o);
      expect(() => new Model(o).validate()).not.toThrow();
    }
  });

  it('schema validation does catch a wrong type and a missing required field (the check can fail)', () => {
    const sts = structuredClone(find(objects, 'StatefulSet', 'peer-node'));
    sts.spec.replicas = 'three';
    expect(() => new (modelOf(sts))(sts).validate()).toThrow();
    const svc = structuredClone(find(objects, 'Service', 'gateway'));
    delete svc.spec.ports[0].port;
    expect(() => new (modelOf(svc))(svc).validate()).toThrow();
  });

  it('runs each app in exactly one container, and each container runs a known app', () => {
    const apps = containersOf(objects).map(({ c }) => appOf(c));
    expect([...apps].sort()).toEqual([...APPS].sort());
  });

  it('sets every required variable, only variables the app reads, and values its config accepts', () => {
    for (const { c, pod } of containersOf(objects)) {
      const app = appOf(c);
      const reads = appEnvVars(app);
      const set = (c.env as Obj[]).map((e) => e.name);
      expect(new Set(set).size).toBe(set.length);
      // Helpers (downward API) are allowed only when something in the container references them.
      const refs = JSON.stringify([c.env.map((e: Obj) => e.value ?? ''), (c.volumeMounts ?? []).map((m: Obj) => m.subPathExpr ?? '')]);
      for (const name of set) {
        if (reads.includes(name)) continue;
        expect({ container: c.name, helper: name, referenced: refs.includes(`$(${name})`) }).toEqual({ container: c.name, helper: name, referenced: true });
        expect(c.env.find((e: Obj) => e.name === name).valueFrom?.fieldRef).toBeDefined();
      }
      for (const v of REQUIRED[app]) expect(reads).toContain(v);
      expect({ container: c.name, missing: REQUIRED[app].filter((v) => !set.includes(v)) }).toEqual({ container: c.name, missing: [] });
      const env = resolveEnv(c, objects, pod);
      for (const [name, v] of Object.entries(env)) expect({ name, unresolved: /\$\(/.test(v) }).toEqual({ name, unresolved: false });
      expect(() => CONFIG_READERS[app](env)).not.toThrow();
    }
  });

  it('every ConfigMap key is read by some container', () => {
    const refs = containersOf(objects).flatMap(({ c }) => (c.env as Obj[]).map((e) => e.valueFrom?.configMapKeyRef).filter(Boolean));
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap')) {
      for (const key of Object.keys(cm.data)) expect({ key, used: refs.some((r) => r.name === cm.metadata.name && r.key === key) }).toEqual({ key, used: true });
    }
  });

  it('selectors match the pod labels of their workloads, Services and policies select existing pods', () => {
    const pods = objects.filter((o) => podSpec(o));
    for (const w of pods) expect(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels)).toBe(true);
    const podLabels = pods.map((w) => w.spec.template.metadata.labels);
    for (const svc of objects.filter((o) => o.kind === 'Service')) expect(podLabels.filter((l) => selects(svc.spec.selector, l))).toHaveLength(1);
    for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) expect(podLabels.filter((l) => selects(pdb.spec.selector.matchLabels, l))).toHaveLength(1);
    for (const np of objects.filter((o) => o.kind === 'NetworkPolicy')) {
      const sel = np.spec.podSelector.matchLabels;
      if (sel) expect(podLabels.filter((l) => selects(sel, l))).toHaveLength(1);
      for (const rule of [...(np.spec.ingress ?? []).flatMap((r: Obj) => r.from ?? []), ...(np.spec.egress ?? []).flatMap((r: Obj) => r.to ?? [])]) {
        if (rule.namespaceSelector) continue; // DNS: kube-dns in kube-system
        expect(podLabels.filter((l) => selects(rule.podSelector.matchLabels, l))).toHaveLength(1);
      }
    }
  });

  it('container ports, probe ports and Service target ports are the ports the apps are told to use', () => {
    for (const w of objects.filter((o) => podSpec(o))) {
      // Service target ports name a port of some container of the selected pods; headless ports are the same numbers.
      const podPorts = Object.fromEntries(podSpec(w)!.containers.flatMap((c: Obj) => (c.ports ?? []).map((p: Obj) => [p.name, p.containerPort])));
      for (const svc of objects.filter((o) => o.kind === 'Service' && selects(o.spec.selector, w.spec.template.metadata.labels))) {
        for (const p of svc.spec.ports) expect({ svc: svc.metadata.name, port: p.name, target: podPorts[p.targetPort] }).toEqual({ svc: svc.metadata.name, port: p.name, target: expect.any(Number) });
        if (svc.spec.clusterIP === 'None') for (const p of svc.spec.ports) expect(p.port).toBe(podPorts[p.targetPort]);
      }
    }
    for (const { spec, c, pod } of containersOf(objects)) {
      const env = resolveEnv(c, objects, pod);
      const ports = Object.fromEntries((c.ports ?? []).map((p: Obj) => [p.name, p.containerPort]));
      const app = appOf(c);
      if (app === 'peer-node') {
        expect(ports).toEqual({ client: Number(env.NODE_CLIENT_PORT), peer: Number(env.NODE_PEER_PORT) });
        expect(env.NODE_HOST).toBe('0.0.0.0');
        // The node's services are the containers next to it, on the pod's loopback.
        const sibling = (name: string) => {
          const s = (spec.containers as Obj[]).find((x) => appOf(x) === name) as Obj;
          return resolveEnv(s, objects, pod);
        };
        const crypto = sibling('crypto-service');
        const storage = sibling('storage-service');
        expect(env.NODE_CRYPTO_ADDRESS).toBe(`${crypto.CRYPTO_HOST}:${crypto.CRYPTO_PORT}`);
        expect(env.NODE_STORAGE_ADDRESS).toBe(`${storage.STORAGE_HOST}:${storage.STORAGE_PORT}`);
      } else if (app === 'crypto-service' || app === 'storage-service') {
        const [host, health, name] = app === 'crypto-service' ? [env.CRYPTO_HOST, env.CRYPTO_HEALTH_ADDRESS, 'crypto-health'] : [env.STORAGE_HOST, env.STORAGE_HEALTH_ADDRESS, 'storage-health'];
        expect(host).toBe('127.0.0.1'); // the API never on the pod network
        // Only the health-only listener is on the pod IP, and it is the one port the container declares.
        expect(health).toMatch(/^0\.0\.0\.0:\d+$/);
        expect(ports).toEqual({ [name]: Number(health.split(':')[1]) });
      } else {
        expect(ports).toEqual({ http: Number(env.GATEWAY_PORT) });
        expect(env.GATEWAY_HOST).toBe('0.0.0.0');
        expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
        expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      }
    }
  });

  it('every gRPC container has native gRPC readiness and liveness probes on a plaintext health port its environment binds on the pod IP', () => {
    const grpcApps = containersOf(objects).filter(({ c }) => appOf(c) !== 'gateway');
    expect(grpcApps.map(({ c }) => appOf(c)).sort()).toEqual(['crypto-service', 'peer-node', 'storage-service']);
    for (const { c, pod } of grpcApps) {
      const env = resolveEnv(c, objects, pod);
      const targets = grpcHealthTargets(appOf(c), env);
      expect({ container: c.name, targets: Object.keys(targets).length }).toEqual({ container: c.name, targets: 1 });
      for (const kind of PROBES) {
        const probe = c[kind];
        if (kind === 'startupProbe' && !probe) continue;
        // Native only: no exec (needs a helper in the image), no TCP-only check.
        expect({ container: c.name, kind, handlers: Object.keys(probe).filter((k) => ['grpc', 'exec', 'httpGet', 'tcpSocket'].includes(k)) }).toEqual({ container: c.name, kind, handlers: ['grpc'] });
        expect({ container: c.name, kind, target: targets[probe.grpc.port] }).toEqual({ container: c.name, kind, target: expect.any(String) });
        // The whole server's status ('' service): the servers set no per-service NOT_SERVING on their own.
        expect(probe.grpc.service ?? '').toBe('');
      }
    }
    // The peer-node loads its index before it listens: a startup probe holds liveness back meanwhile.
    const node = grpcApps.find(({ c }) => appOf(c) === 'peer-node')!.c;
    expect(node.startupProbe.grpc.port).toBe(node.livenessProbe.grpc.port);
    expect(node.startupProbe.periodSeconds * node.startupProbe.failureThreshold).toBeGreaterThanOrEqual(300);
  });

  it('the probe check can fail: an exec probe, a port nobody binds, a health listener left on loopback', () => {
    const sts = find(objects, 'StatefulSet', 'peer-node');
    const pod = { name: 'peer-node-0', namespace: sts.metadata.namespace };
    const crypto = structuredClone((sts.spec.template.spec.containers as Obj[]).find((c) => appOf(c) === 'crypto-service')!);
    const env = resolveEnv(crypto, objects, pod);
    expect(grpcHealthTargets('crypto-service', env)[crypto.livenessProbe.grpc.port]).toBeDefined();
    expect(grpcHealthTargets('crypto-service', env)[Number(env.CRYPTO_PORT)]).toBeUndefined();
    expect(grpcHealthTargets('crypto-service', { ...env, CRYPTO_HEALTH_ADDRESS: '127.0.0.1:7112' })).toEqual({});
    expect(grpcHealthTargets('crypto-service', { ...env, CRYPTO_HEALTH_ADDRESS: '' })).toEqual({});
    const node = (sts.spec.template.spec.containers as Obj[]).find((c) => appOf(c) === 'peer-node')!;
    const nodeEnv = resolveEnv(node, objects, pod);
    expect(grpcHealthTargets('peer-node', nodeEnv)[Number(nodeEnv.NODE_PEER_PORT)]).toBeUndefined(); // TLS
    expect(grpcHealthTargets('peer-node', { ...nodeEnv, NODE_HOST: '127.0.0.1' })).toEqual({});
  });

  it('the containers of a pod bind distinct ports (they share the pod network namespace)', () => {
    for (const w of objects.filter((o) => podSpec(o))) {
      const pod = { name: `${w.metadata.name}-0`, namespace: w.metadata.namespace };
      const ports = (podSpec(w)!.containers as Obj[]).flatMap((c) => boundPorts(appOf(c), resolveEnv(c, objects, pod)));
      expect(ports.every((p) => Number.isInteger(p) && p > 0)).toBe(true);
      expect(new Set(ports).size).toBe(ports.length);
    }
  });

  it('discovery: the headless Service, the advertised names, the DNS discovery name and the gateway agree', () => {
    const sts = find(objects, 'StatefulSet', 'peer-node');
    const ns = sts.metadata.namespace;
    const svc = find(objects, 'Service', sts.spec.serviceName);
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.publishNotReadyAddresses).toBe(true);
    const node = (sts.spec.template.spec.containers as Obj[]).find((c) => appOf(c) === 'peer-node') as Obj;
    const fqdn = (i: number) => `${sts.metadata.name}-${i}.${svc.metadata.name}.${ns}.svc.cluster.local`;
    for (let i = 0; i < sts.spec.replicas; i++) {
      const env = resolveEnv(node, objects, { name: `${sts.metadata.name}-${i}`, namespace: ns });
      expect(env.NODE_ADVERTISE_ADDRESS).toBe(`${fqdn(i)}:${env.NODE_PEER_PORT}`);
      // Discovery resolves the headless Service itself (every pod, at any scale), on the peer port;
      // no fixed bootstrap list to keep in step with the replica count.
      expect(env.NODE_DISCOVERY_DNS).toBe(`${svc.metadata.name}.${ns}.svc.cluster.local:${env.NODE_PEER_PORT}`);
      expect(env.NODE_BOOTSTRAP).toBeUndefined();
      expect((svc.spec.ports as Obj[]).find((p) => p.name === 'peer')?.port).toBe(Number(env.NODE_PEER_PORT));
    }
    const gw = find(objects, 'Deployment', 'gateway');
    const gwEnv = resolveEnv(gw.spec.template.spec.containers[0], objects, { name: 'gateway-x', namespace: ns });
    const node0 = resolveEnv(node, objects, { name: `${sts.metadata.name}-0`, namespace: ns });
    expect(gwEnv.GATEWAY_NODE_ADDRESS).toBe(`${fqdn(0)}:${node0.NODE_CLIENT_PORT}`);
  });

  it("mounts each node's identity, vault key and data where the apps are told to find them", () => {
    const sts = find(objects, 'StatefulSet', 'peer-node');
    const spec = sts.spec.template.spec;
    const ns = sts.metadata.namespace;
    const claims = (sts.spec.volumeClaimTemplates as Obj[]).map((v) => v.metadata.name);
    const secretsVol = (spec.volumes as Obj[]).find((v) => v.name === 'node-secrets') as Obj;
    const items = (secretName: string) =>
      (secretsVol.projected.sources as Obj[]).find((s) => s.secret?.name === secretName)?.secret.items.map((i: Obj) => `${i.key}=>${i.path}`);
    const pods = Array.from({ length: sts.spec.replicas }, (_, i) => `peer-node-${i}`);
    expect(items('distri-vault-identities')).toEqual(pods.map((p) => `${p}=>${p}/identity/identity.json`));
    expect(items('distri-vault-vault-keys')).toEqual(pods.map((p) => `${p}=>${p}/keys/vault-key.json`));
    // [variable, volume, subPath, the variable's path below the mount]
    const expectations: Record<string, [string, string, string, string]> = {
      'peer-node': ['NODE_IDENTITY_DIR', 'node-secrets', 'peer-node-1/identity', ''],
      'crypto-service': ['CRYPTO_KEY_DIR', 'vault-key', '', '/keys'],
      'storage-service': ['STORAGE_DATA_DIR', 'data', '', ''],
    };
    for (const c of spec.containers as Obj[]) {
      const [v, volume, sub, below] = expectations[appOf(c)];
      const env = resolveEnv(c, objects, { name: 'peer-node-1', namespace: ns });
      let mounts = (c.volumeMounts ?? []) as Obj[];
      if (appOf(c) === 'peer-node') {
        // The network secret (read-only, from its Secret) and a writable directory for the TLS certificate.
        const byName = Object.fromEntries(mounts.map((m) => [m.name, m]));
        expect(byName['network-secret']).toEqual({ name: 'network-secret', mountPath: env.NODE_NETWORK_SECRET_FILE.replace(/\/network\.secret$/, ''), readOnly: true });
        expect((spec.volumes as Obj[]).find((x) => x.name === 'network-secret')!.secret).toMatchObject({ secretName: 'distri-vault-network', defaultMode: 0o440 });
        expect(byName['tls']).toEqual({ name: 'tls', mountPath: env.NODE_TLS_DIR });
        expect((spec.volumes as Obj[]).find((x) => x.name === 'tls')!.emptyDir).toBeDefined();
        mounts = mounts.filter((m) => m.name !== 'network-secret' && m.name !== 'tls');
      }
      expect(mounts).toHaveLength(1);
      const m = mounts[0];
      expect({ path: m.mountPath + below, volume: m.name, sub: m.subPathExpr ? expand(m.subPathExpr, env) : '' }).toEqual({ path: env[v], volume, sub });
      // Claims are writable (the keyring is rewritten by rotation and shredding); Secrets read-only.
      expect(m.readOnly ?? false).toBe(!claims.includes(volume));
      expect(volume === 'node-secrets' ? (spec.volumes as Obj[]).map((x) => x.name) : claims).toContain(volume);
    }
  });

  it('the vault key lives on a writable claim of its own, seeded by an init container: the Secret only seeds it', () => {
    const sts = find(objects, 'StatefulSet', 'peer-node');
    const spec = sts.spec.template.spec;
    const ns = sts.metadata.namespace;
    const claim = (sts.spec.volumeClaimTemplates as Obj[]).find((v) => v.metadata.name === 'vault-key')!;
    expect(claim.spec.accessModes).toEqual(['ReadWriteOnce']);
    expect(claim.spec.resources.requests.storage).toMatch(/^\d+(Mi|Gi)$/);
    expect((spec.volumes as Obj[]).map((v) => v.name)).not.toContain('vault-key'); // the template's claim, per pod
    const [init] = spec.initContainers as Obj[];
    expect((spec.initContainers as Obj[]).map((c) => c.name)).toEqual(['seed-vault-key']);
    const crypto = (spec.containers as Obj[]).find((c) => appOf(c) === 'crypto-service')!;
    expect(init.image).toBe(crypto.image);
    // The image's entrypoint is node: the args are `-e <script>`, a script using Node built-ins only.
    expect(init.args).toHaveLength(2);
    expect(init.args[0]).toBe('-e');
    const script: string = init.args[1];
    expect([...script.matchAll(/require\('([^']+)'\)/g)].map((m) => m[1]).every((r) => r.startsWith('node:'))).toBe(true);
    // Every variable it sets is read by the script (POD_NAME: only for subPathExpr), every one read is set.
    const set = (init.env as Obj[]).map((e) => e.name);
    expect(scriptEnvVars(script)).toEqual(['CRYPTO_KEY_DIR', 'VAULT_KEY_SEED_FILE']);
    expect(set.filter((n) => n !== 'POD_NAME').sort()).toEqual(scriptEnvVars(script));
    expect(init.volumeMounts.some((m: Obj) => m.subPathExpr?.includes('$(POD_NAME)'))).toBe(true);
    for (let i = 0; i < sts.spec.replicas; i++) {
      const pod = { name: `${sts.metadata.name}-${i}`, namespace: ns };
      const env = resolveEnv(init, objects, pod);
      const cryptoEnv = resolveEnv(crypto, objects, pod);
      // The init container writes the key where the crypto-service reads it: the same directory of the same claim...
      expect(env.CRYPTO_KEY_DIR).toBe(cryptoEnv.CRYPTO_KEY_DIR);
      const under = (c: Obj, path: string) => (c.volumeMounts as Obj[]).filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
      for (const c of [init, crypto]) {
        const ms = under(c, env.CRYPTO_KEY_DIR);
        expect({ c: c.name, mounts: ms }).toEqual({ c: c.name, mounts: [{ name: 'vault-key', mountPath: ms[0]?.mountPath }] }); // writable: no readOnly, no subPath
      }
      // ...and reads this pod's own Secret entry, read-only.
      const seedMounts = under(init, env.VAULT_KEY_SEED_FILE);
      expect(seedMounts).toHaveLength(1);
      expect(seedMounts[0]).toMatchObject({ name: 'node-secrets', readOnly: true });
      const secretsVol = (spec.volumes as Obj[]).find((v) => v.name === 'node-secrets')!;
      const rel = `${expand(seedMounts[0].subPathExpr, env)}${env.VAULT_KEY_SEED_FILE.slice(seedMounts[0].mountPath.length)}`;
      const item = (secretsVol.projected.sources as Obj[]).find((s) => s.secret.name === 'distri-vault-vault-keys')!.secret.items.find((it: Obj) => it.path === rel);
      expect(item).toEqual({ key: pod.name, path: rel });
    }
  });

  it('the vault keys Secret is mounted into the init container only; the key claim into it and the crypto-service only', () => {
    const sts = find(objects, 'StatefulSet', 'peer-node');
    const spec = sts.spec.template.spec;
    const pod = { name: `${sts.metadata.name}-1`, namespace: sts.metadata.namespace };
    const seen: Record<string, string[]> = {};
    const claimUsers: string[] = [];
    for (const c of [...(spec.initContainers as Obj[]), ...(spec.containers as Obj[])]) {
      const env = resolveEnv(c, objects, pod);
      seen[c.name] = (c.volumeMounts as Obj[]).flatMap((m) => visibleItems(spec, m, env)).sort();
      if ((c.volumeMounts as Obj[]).some((m) => m.name === 'vault-key')) claimUsers.push(c.name);
    }
    expect(seen).toEqual({ 'seed-vault-key': ['distri-vault-vault-keys:peer-node-1'], 'peer-node': ['distri-vault-identities:peer-node-1'], 'crypto-service': [], 'storage-service': [] });
    expect(claimUsers).toEqual(['seed-vault-key', 'crypto-service']);
    // The check can fail: a container mounting the whole projected volume would see every node's entries.
    expect(visibleItems(spec, { name: 'node-secrets', mountPath: '/x' }, {})).toContain('distri-vault-vault-keys:peer-node-0');
  });

  it("mounts the gateway's token store from its own claim, where GATEWAY_DATA_DIR points", () => {
    const gw = find(objects, 'Deployment', 'gateway');
    const c = gw.spec.template.spec.containers[0];
    const env = resolveEnv(c, objects, { name: 'gateway-x', namespace: gw.metadata.namespace });
    expect(c.volumeMounts).toEqual([{ name: 'gateway-data', mountPath: env.GATEWAY_DATA_DIR }]);
    const vol = gw.spec.template.spec.volumes.find((v: Obj) => v.name === 'gateway-data');
    const pvc = find(objects, 'PersistentVolumeClaim', vol.persistentVolumeClaim.claimName);
    expect(pvc.spec.accessModes).toEqual(['ReadWriteOnce']);
    // One writer of the token file: one replica, never two pods during a rollout.
    expect(gw.spec.replicas).toBe(1);
    expect(gw.spec.strategy).toEqual({ type: 'Recreate' });
  });

  it('locks down every pod and container (init containers too), with probes, requests and limits', () => {
    for (const { spec, c } of initContainersOf(objects)) {
      expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
      expect(c.resources).toEqual({ requests: { cpu: expect.anything(), memory: expect.any(String) }, limits: { cpu: expect.anything(), memory: expect.any(String) } });
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
    }
    expect(initContainersOf(objects)).toHaveLength(1);
    for (const { spec, c } of containersOf(objects)) {
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: expect.any(Number), seccompProfile: { type: 'RuntimeDefault' } });
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
      expect(c.resources).toEqual({ requests: { cpu: expect.anything(), memory: expect.any(String) }, limits: { cpu: expect.anything(), memory: expect.any(String) } });
      expect(c.readinessProbe).toBeDefined();
      expect(c.livenessProbe).toBeDefined();
    }
  });

  it('a disruption budget keeps a majority of the nodes and a write quorum, and lets one go', () => {
    const sts = find(objects, 'StatefulSet', 'peer-node');
    const pdb = find(objects, 'PodDisruptionBudget', 'peer-node');
    expect(selects(pdb.spec.selector.matchLabels, sts.spec.template.metadata.labels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeGreaterThan(sts.spec.replicas / 2);
    expect(pdb.spec.minAvailable).toBeLessThan(sts.spec.replicas);
    // The values the nodes run with: a put needs NODE_WRITE_QUORUM live nodes, and R copies need R nodes.
    const node = (sts.spec.template.spec.containers as Obj[]).find((c) => appOf(c) === 'peer-node')!;
    const cfg = readNodeConfig(resolveEnv(node, objects, { name: 'peer-node-0', namespace: sts.metadata.namespace }));
    expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(cfg.NODE_WRITE_QUORUM);
    expect(sts.spec.replicas).toBeGreaterThanOrEqual(cfg.NODE_REPLICAS);
  });

  it('network policies: deny by default; gateway -> client port, node <-> node on the peer port, DNS; nothing else', () => {
    const deny = find(objects, 'NetworkPolicy', 'default-deny');
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    const sts = find(objects, 'StatefulSet', 'peer-node');
    const node = sts.spec.template.spec.containers.find((c: Obj) => appOf(c) === 'peer-node');
    const port = (name: string) => node.ports.find((p: Obj) => p.name === name).containerPort;
    const name = (r: Obj) => r.podSelector?.matchLabels?.['app.kubernetes.io/name'] ?? (r.namespaceSelector ? 'dns' : '?');
    const summary = (np: Obj, dir: 'ingress' | 'egress') =>
      (np.spec[dir] as Obj[]).flatMap((r) => (r[dir === 'ingress' ? 'from' : 'to'] ?? [{ any: true }]).flatMap((peer: Obj) => r.ports.map((p: Obj) => `${peer.any ? '*' : name(peer)}:${p.port}/${p.protocol}`)));
    const np = find(objects, 'NetworkPolicy', 'peer-node');
    expect(summary(np, 'ingress')).toEqual([`gateway:${port('client')}/TCP`, `peer-node:${port('peer')}/TCP`]);
    expect(summary(np, 'egress')).toEqual([`peer-node:${port('peer')}/TCP`, 'dns:53/UDP', 'dns:53/TCP']);
    const gw = find(objects, 'NetworkPolicy', 'gateway');
    const gwPort = find(objects, 'Deployment', 'gateway').spec.template.spec.containers[0].ports[0].containerPort;
    expect(summary(gw, 'ingress')).toEqual([`*:${gwPort}/TCP`]);
    expect(summary(gw, 'egress')).toEqual([`peer-node:${port('client')}/TCP`, 'dns:53/UDP', 'dns:53/TCP']);
    expect(objects.filter((o) => o.kind === 'NetworkPolicy')).toHaveLength(3);
    // The probe-only ports (health listeners, and the NodeService as probed) are reached by the kubelet
    // from the pod's own node, which NetworkPolicy always allows: no rule opens the health listeners.
    const opened = objects.filter((o) => o.kind === 'NetworkPolicy').flatMap((p) => (p.spec.ingress ?? []).flatMap((r: Obj) => r.ports.map((x: Obj) => x.port)));
    const healthOnly = (sts.spec.template.spec.containers as Obj[]).filter((c) => appOf(c) !== 'peer-node').flatMap((c) => [c.readinessProbe.grpc.port, c.livenessProbe.grpc.port]);
    expect(healthOnly.length).toBe(4);
    for (const p of healthOnly) expect({ port: p, opened: opened.includes(p) }).toEqual({ port: p, opened: false });
  });

  it('contains no Secret (they are created by the operator) and every image is the one distri-vault image', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const images = new Set(containersOf(objects).map(({ c }) => c.image));
    expect([...images]).toEqual(['ghcr.io/example/distri-vault:0.1.0']);
  });
});

describe('ConfigMap distri-vault-config (base)', () => {
  const objects = rendered.base.objects;
  const cm = find(objects, 'ConfigMap', 'distri-vault-config');
  const READERS: [RegExp, (env: NodeJS.ProcessEnv) => Record<string, unknown>][] = [
    [/^NODE_/, readNodeConfig as any],
    [/^STORAGE_/, loadStorageConfig as any],
    [/^LOG_LEVEL$/, readNodeConfig as any],
  ];

  it('carries the node settings an operator tunes', () => {
    for (const key of ['NODE_REPLICAS', 'NODE_WRITE_QUORUM', 'NODE_REPAIR_GRACE_MS', 'NODE_REPAIR_INTERVAL_MS', 'NODE_REPAIR_RATE_BYTES', 'NODE_SYNC_INTERVAL_MS', 'NODE_HEARTBEAT_MS', 'NODE_SUSPECT_AFTER_MS', 'NODE_DOWN_AFTER_MS', 'NODE_DISCOVERY_INTERVAL_MS', 'NODE_CHUNK_SIZE', 'NODE_WINDOW']) {
      expect({ key, present: key in cm.data }).toEqual({ key, present: true });
    }
  });

  it('holds the apps’ defaults: each value parses to what the app uses when the variable is unset', () => {
    for (const [key, value] of Object.entries<string>(cm.data)) {
      const reader = READERS.find(([re]) => re.test(key));
      expect({ key, reader: Boolean(reader) }).toEqual({ key, reader: true });
      const read = reader![1];
      expect({ key, value: read({ [key]: value })[key] }).toEqual({ key, value: read({})[key] });
    }
    // ...and the comparison can fail.
    expect(readNodeConfig({ NODE_REPAIR_GRACE_MS: '600000' }).NODE_REPAIR_GRACE_MS).not.toBe(readNodeConfig({}).NODE_REPAIR_GRACE_MS);
  });

  it('the prod overlay waits longer before re-making a gone node’s copies, and the values still parse', () => {
    const prod = find(rendered['overlays/prod'].objects, 'ConfigMap', 'distri-vault-config');
    expect(Number(prod.data.NODE_REPAIR_GRACE_MS)).toBeGreaterThan(Number(cm.data.NODE_REPAIR_GRACE_MS));
    expect(() => readNodeConfig(prod.data)).not.toThrow();
  });
});

describe('kustomizations', () => {
  it('list every manifest of their directory, and only existing ones', () => {
    for (const k of KUSTOMIZATIONS) {
      const dir = join(DEPLOY, k);
      const yamls = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
      const listed = (readKustomization(dir).resources as string[]).filter((r) => /\.ya?ml$/.test(r));
      expect([...listed].sort()).toEqual([...yamls].sort());
    }
    // Every file the base lists is read by the renderer (a listed file that does not exist throws).
    expect(rendered.base.files.map((f) => relative(DEPLOY, f)).sort()).toEqual(readdirSync(join(DEPLOY, 'base')).filter((f) => f !== 'kustomization.yaml').map((f) => `base/${f}`).sort());
  });

  it.each(OVERLAYS)('%s builds on the base and patches only objects that exist', (k) => {
    const kz = readKustomization(join(DEPLOY, k));
    expect(kz.resources).toEqual(['../../base']);
    const base = rendered.base.objects;
    for (const p of kz.patches) expect(base.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name)).toHaveLength(1);
  });

  it('the renderer refuses a patch whose path does not exist (so the overlay checks can fail)', () => {
    const sts = structuredClone(find(rendered.base.objects, 'StatefulSet', 'peer-node'));
    expect(() => applyJsonPatch(sts, [{ op: 'replace', path: '/spec/template/spec/containers/3/resources', value: {} }], 'test')).toThrow(/does not exist/);
    expect(() => applyJsonPatch(sts, [{ op: 'replace', path: '/spec/replica', value: 1 }], 'test')).toThrow(/does not exist/);
  });

  it('dev is 3 nodes and 1 gateway; prod is 5 nodes, each on its own host, with more resources', () => {
    const dev = rendered['overlays/dev'].objects;
    const prod = rendered['overlays/prod'].objects;
    expect(find(dev, 'StatefulSet', 'peer-node').spec.replicas).toBe(3);
    expect(find(dev, 'Deployment', 'gateway').spec.replicas).toBe(1);
    const sts = find(prod, 'StatefulSet', 'peer-node');
    expect(sts.spec.replicas).toBe(5);
    const anti = sts.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
    expect(anti).toEqual([{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: sts.spec.template.metadata.labels } }]);
    const mem = (objs: Obj[]) => find(objs, 'StatefulSet', 'peer-node').spec.template.spec.containers[0].resources.limits.memory;
    const mi = (s: string) => (s.endsWith('Gi') ? parseFloat(s) * 1024 : parseFloat(s));
    expect(mi(mem(prod))).toBeGreaterThan(mi(mem(dev)));
  });
});

describe('secret material', () => {
  it('no file under deploy/ holds a private key or a vault key', () => {
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
    for (const f of walk(DEPLOY)) {
      const text = readFileSync(f, 'utf8');
      expect({ f, pem: /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text), key: /"key"\s*:\s*"[A-Za-z0-9+/]{43}="/.test(text) }).toEqual({ f, pem: false, key: false });
    }
  });
});
