/**
 * Offline helpers for the deploy/ tests: a small kustomize renderer (the features deploy/ uses: resources,
 * namespace, images, JSON 6902 patches with kind/name targets; anything else is refused), and readers for
 * what the manifests give a container (its app, its environment as the kubelet would resolve it).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import YAML from 'yaml';

export const REPO = resolve(__dirname, '../..');
export const DEPLOY = join(REPO, 'deploy');

/** A Kubernetes object as parsed from YAML. */
export type Obj = Record<string, any>;

/** Every YAML document of a file, as plain objects. */
export function readYamlDocs(file: string): Obj[] {
  return YAML.parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return d.toJSON();
    })
    .filter((o) => o !== null && o !== undefined);
}

const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images', 'patches']);
/** Kinds that are not namespaced (the namespace transformer leaves them alone). */
const CLUSTER_SCOPED = new Set(['Namespace']);

/** Reads `<dir>/kustomization.yaml`, refusing fields this renderer does not implement. */
export function readKustomization(dir: string): Obj {
  const [k] = readYamlDocs(join(dir, 'kustomization.yaml'));
  for (const key of Object.keys(k)) if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${dir}: kustomization field ${key} is not supported by the test renderer`);
  if (k.kind !== 'Kustomization') throw new Error(`${dir}: not a Kustomization`);
  return k;
}

/** Splits a JSON pointer into its unescaped tokens. */
function pointer(path: string): string[] {
  if (!path.startsWith('/')) throw new Error(`bad JSON pointer ${path}`);
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Applies RFC 6902 add/replace/remove operations strictly: a missing parent or replaced member throws. */
export function applyJsonPatch(target: Obj, ops: Obj[], what: string): void {
  for (const op of ops) {
    const tokens = pointer(op.path);
    const last = tokens.pop() as string;
    let parent: any = target;
    for (const t of tokens) {
      if (parent === null || typeof parent !== 'object' || !(t in parent)) throw new Error(`${what}: ${op.op} ${op.path}: ${t} does not exist`);
      parent = parent[t];
    }
    if (parent === null || typeof parent !== 'object') throw new Error(`${what}: ${op.op} ${op.path}: parent is not an object`);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > parent.length || (op.op !== 'add' && i >= parent.length)) throw new Error(`${what}: ${op.op} ${op.path}: bad index`);
      if (op.op === 'add') parent.splice(i, 0, structuredClone(op.value));
      else if (op.op === 'replace') parent[i] = structuredClone(op.value);
      else if (op.op === 'remove') parent.splice(i, 1);
      else throw new Error(`${what}: op ${op.op} not supported`);
    } else {
      if (op.op !== 'add' && !(last in parent)) throw new Error(`${what}: ${op.op} ${op.path}: ${last} does not exist`);
      if (op.op === 'add' || op.op === 'replace') parent[last] = structuredClone(op.value);
      else if (op.op === 'remove') delete parent[last];
      else throw new Error(`${what}: op ${op.op} not supported`);
    }
  }
}

/** What rendering a kustomization produced, with the files it read. */
export interface Rendered {
  objects: Obj[];
  /** Resource files (not directories) listed, resolved. */
  files: string[];
}

/** Renders a kustomization directory the way `kubectl kustomize` does for the features deploy/ uses. */
export function render(dir: string): Rendered {
  const k = readKustomization(dir);
  const objects: Obj[] = [];
  const files: string[] = [];
  for (const r of k.resources ?? []) {
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new Error(`${dir}: resource ${r} does not exist`);
    if (statSync(p).isDirectory()) {
      const sub = render(p);
      objects.push(...sub.objects);
      files.push(...sub.files);
    } else {
      objects.push(...readYamlDocs(p));
      files.push(p);
    }
  }
  for (const patch of k.patches ?? []) {
    const t = patch.target ?? {};
    const hits = objects.filter((o) => o.kind === t.kind && o.metadata?.name === t.name);
    if (hits.length !== 1) throw new Error(`${dir}: patch target ${t.kind}/${t.name} matches ${hits.length} objects`);
    const ops = YAML.parse(patch.patch);
    if (!Array.isArray(ops)) throw new Error(`${dir}: only JSON 6902 patches are supported`);
    applyJsonPatch(hits[0], ops, `${dir}: patch ${t.kind}/${t.name}`);
  }
  for (const img of k.images ?? []) {
    for (const c of allContainers(objects)) {
      if (c.image === img.name) c.image = `${img.newName ?? img.name}${img.newTag ? `:${img.newTag}` : ''}`;
    }
  }
  if (k.namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  return { objects, files };
}

/** The pod template of a workload, if it has one. */
export function podSpec(o: Obj): Obj | undefined {
  return o.spec?.template?.spec;
}

/** Every container (and init container) of every workload in `objects`. */
export function allContainers(objects: Obj[]): Obj[] {
  return objects.flatMap((o) => {
    const s = podSpec(o);
    return s ? [...(s.initContainers ?? []), ...(s.containers ?? [])] : [];
  });
}

/** Finds exactly one object of a kind and name. */
export function find(objects: Obj[], kind: string, name: string): Obj {
  const hits = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  if (hits.length !== 1) throw new Error(`${kind}/${name}: ${hits.length} objects`);
  return hits[0];
}

/** The app a container runs: `/app/dist/apps/<app>/main.js` in its args. */
export function appOf(c: Obj): string {
  const m = /^\/app\/dist\/apps\/([a-z-]+)\/main\.js$/.exec((c.args ?? [])[0] ?? '');
  if (!m) throw new Error(`container ${c.name}: args do not name an app bundle`);
  return m[1];
}

/**
 * The environment variables an app reads: the keys of the zod schema in apps/<app>/src/config.ts (the
 * only file of each app that reads process.env), read from the source so no list is kept by hand.
 */
export function appEnvVars(app: string): string[] {
  const src = readFileSync(join(REPO, 'apps', app, 'src/config.ts'), 'utf8');
  const body = src.slice(src.indexOf('z.object({'));
  const names = [...body.matchAll(/^\s{2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
  if (!names.length) throw new Error(`no variables found in apps/${app}/src/config.ts`);
  return names;
}

/** What the downward API gives a pod. */
export interface PodFacts {
  name: string;
  namespace: string;
}

/**
 * A container's environment as the kubelet resolves it: literal values, ConfigMap keys and downward-API
 * fields, then `$(VAR)` references to variables defined earlier in the list. Throws on a missing
 * ConfigMap or key, or an unsupported source.
 */
export function resolveEnv(c: Obj, objects: Obj[], pod: PodFacts): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    let v: string;
    if (e.value !== undefined) {
      v = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name) => (name in env ? env[name] : whole));
    } else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const cm = find(objects, 'ConfigMap', ref.name);
      if (!(ref.key in (cm.data ?? {}))) throw new Error(`ConfigMap ${ref.name} has no key ${ref.key}`);
      v = String(cm.data[ref.key]);
    } else if (e.valueFrom?.fieldRef) {
      const f = e.valueFrom.fieldRef.fieldPath;
      if (f === 'metadata.name') v = pod.name;
      else if (f === 'metadata.namespace') v = pod.namespace;
      else throw new Error(`fieldRef ${f} not supported`);
    } else {
      throw new Error(`env ${e.name}: unsupported source`);
    }
    env[e.name] = v;
  }
  return env;
}

/** Expands `$(VAR)` in a string (subPathExpr) from a resolved environment. */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name) => (name in env ? env[name] : whole));
}

/** True when every key/value of `selector` is among `labels`. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || !Object.keys(selector).length) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The kustomization directories of deploy/: the base and each overlay. */
export const KUSTOMIZATIONS = ['base', 'overlays/dev', 'overlays/prod'];
