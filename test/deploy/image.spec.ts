/**
 * The container image without a Docker engine: the Dockerfile is parsed and its stages replayed on the
 * file system (the build context filtered by .dockerignore, the build stage's COPYs, the real esbuild
 * build, the runtime stage's layout), then checked: every COPY source exists and is in the context, every
 * entrypoint the manifests name exists in the image, the bundles need production dependencies only, the
 * user is non-root, and the apps start from the image layout.
 */
import { execFile, execFileSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { DEPLOY, KUSTOMIZATIONS, REPO, allContainers, render, type Obj } from './k8s';

interface Instr {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  instrs: Instr[];
}

/** Dockerfile → stages (continuation lines joined, comments and parser directives dropped). */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`cannot parse Dockerfile line: ${line}`);
    const [, op, rest] = m;
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!f) throw new Error(`bad FROM ${rest}`);
      stages.push({ name: f[2] ?? String(stages.length), from: f[1].replace(/\$\{(\w+)\}/g, (_, a) => args[a] ?? ''), instrs: [] });
    } else if (!stages.length && op === 'ARG') {
      const [k, v] = rest.split('=');
      args[k] = v ?? '';
    } else {
      if (!stages.length) throw new Error(`${op} before FROM`);
      stages[stages.length - 1].instrs.push({ op, args: rest.replace(/\s+/g, ' ') });
    }
  }
  return { args, stages };
}

/** COPY [--from=x] [--chown=..] src... dest */
function parseCopy(args: string): { from?: string; srcs: string[]; dest: string } {
  const words = args.split(' ');
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() as string;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop() as string;
  return { from, srcs: words, dest };
}

/** A .dockerignore pattern as a RegExp over slash-separated paths relative to the context. */
function ignoreRegExp(pattern: string): RegExp {
  let re = '';
  const p = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === '*' && p[i + 1] === '*') {
      re += '.*';
      i++;
      if (p[i + 1] === '/') i++;
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // A matched directory excludes everything below it.
  return new RegExp(`^${re}(/.*)?$`);
}

const dockerfile = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const ignored = (rel: string) => ignore.some((p) => !p.startsWith('!') && ignoreRegExp(p).test(rel));
const stage = (name: string) => dockerfile.stages.find((s) => s.name === name) as Stage;
const runtime = dockerfile.stages[dockerfile.stages.length - 1];

/** Files below `abs` (or `abs` itself), relative to the repository. */
function filesUnder(abs: string): string[] {
  if (!statSync(abs).isDirectory()) return [relative(REPO, abs)];
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) => filesUnder(join(abs, e.name)));
}

/**
 * Stands in for `npm install --omit=dev`: the top-level packages the lockfile does not mark dev-only,
 * linked from the repository's node_modules (nested node_modules come along inside them).
 */
function productionNodeModules(dest: string): void {
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
  mkdirSync(dest, { recursive: true });
  for (const [path, meta] of Object.entries<Obj>(lock.packages)) {
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(path);
    if (!m || meta.dev || !existsSync(join(REPO, path))) continue;
    mkdirSync(dirname(join(dest, m[1])), { recursive: true });
    symlinkSync(join(REPO, path), join(dest, m[1]));
  }
}

/** Files below an absolute directory (symlinks are not followed), absolute paths. */
function filesUnderAbs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnderAbs(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('Dockerfile', () => {
  it('is multi-stage: build, production dependencies, runtime', () => {
    expect(dockerfile.stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
    for (const s of dockerfile.stages) expect(s.from).toMatch(/^node:20[.-]/);
  });

  it('runs as a numeric non-root user, with node as the entrypoint', () => {
    const user = runtime.instrs.filter((i) => i.op === 'USER').pop()?.args ?? '';
    expect(user).toMatch(/^\d+:\d+$/);
    expect(Number(user.split(':')[0])).toBeGreaterThan(0);
    expect(runtime.instrs.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('["node", "--enable-source-maps", "--single-threaded-gc", "--max-semi-space-size=2"]');
    expect(runtime.instrs.filter((i) => i.op === 'RUN')).toEqual([]); // nothing installed or built in the final stage
  });

  it('takes node_modules only from a stage that installs production dependencies from the lockfile', () => {
    const copies = runtime.instrs.filter((i) => i.op === 'COPY').map((i) => parseCopy(i.args));
    const nm = copies.filter((c) => c.srcs.some((s) => s.includes('node_modules')));
    expect(nm).toHaveLength(1);
    const deps = stage(nm[0].from as string);
    const installs = deps.instrs.filter((i) => i.op === 'RUN' && /npm (install|ci)/.test(i.args));
    expect(installs).toHaveLength(1);
    expect(installs[0].args).toContain('--omit=dev');
    expect(deps.instrs.filter((i) => i.op === 'COPY').map((i) => parseCopy(i.args).srcs).flat()).toEqual(['package.json', 'package-lock.json']);
  });

  it('copies only sources that exist and are in the build context', () => {
    const sources = dockerfile.stages.flatMap((s) => s.instrs.filter((i) => i.op === 'COPY').map((i) => parseCopy(i.args))).filter((c) => !c.from);
    expect(sources.length).toBeGreaterThan(5);
    for (const c of sources) {
      for (const src of c.srcs) {
        expect({ src, exists: existsSync(join(REPO, src)) }).toEqual({ src, exists: true });
        const files = filesUnder(join(REPO, src)).filter((f) => !ignored(f));
        expect({ src, filesInContext: files.length > 0, excludedWhole: ignored(src) }).toEqual({ src, filesInContext: true, excludedWhole: false });
      }
    }
  });

  it('keeps build output, dependencies, local vault data and git out of the context', () => {
    for (const p of ['node_modules', 'dist/apps/gateway/main.js', '.vault/node1/keys/vault-key.json', '.git/config', 'apps/gateway/node_modules/x']) expect({ p, ignored: ignored(p) }).toEqual({ p, ignored: true });
    for (const p of ['deploy/base/configmap.yaml', 'deploy/make-node-secrets.mjs', 'test/deploy/k8s.ts']) expect({ p, ignored: ignored(p) }).toEqual({ p, ignored: true });
    for (const p of ['package-lock.json', 'apps/peer-node/src/main.ts', 'libs/shared/src/index.ts', 'tools/build.mjs']) expect({ p, ignored: ignored(p) }).toEqual({ p, ignored: false });
  });

  describe('replayed on the file system', () => {
    let work: string;
    let image: string;

    beforeAll(() => {
      work = mkdtempSync(join(tmpdir(), 'dv-image-'));
      // Stage "build": its COPYs from the filtered context into /src, the repository's node_modules in
      // place of `npm install`, then its RUN of the build.
      const src = join(work, 'build/src');
      const build = stage('build');
      for (const i of build.instrs.filter((x) => x.op === 'COPY')) {
        const c = parseCopy(i.args);
        for (const s of c.srcs) {
          const dest = c.dest.endsWith('/') ? join(src, c.dest, posix.basename(s)) : join(src, c.dest === './' ? s : c.dest);
          for (const f of filesUnder(join(REPO, s)).filter((x) => !ignored(x))) {
            const target = c.dest === './' || c.dest.endsWith('/') ? join(c.dest === './' ? src : dirname(dest), relative(dirname(join(REPO, s)), join(REPO, f))) : join(dest, relative(join(REPO, s), join(REPO, f)));
            mkdirSync(dirname(target), { recursive: true });
            cpSync(join(REPO, f), target);
          }
        }
      }
      symlinkSync(join(REPO, 'node_modules'), join(src, 'node_modules'));
      const buildRun = build.instrs.filter((x) => x.op === 'RUN').pop() as Instr;
      expect(buildRun.args).toMatch(/^node tools\/build\.mjs( [a-z-]+)+$/);
      execFileSync(process.execPath, [...buildRun.args.split(' ').slice(1), '--quiet'], { cwd: src, stdio: 'inherit' });
      // Stage "runtime": lay out /app from the stages and the context.
      image = join(work, 'image');
      const workdir = runtime.instrs.find((x) => x.op === 'WORKDIR')?.args as string;
      for (const i of runtime.instrs.filter((x) => x.op === 'COPY')) {
        const c = parseCopy(i.args);
        const [s] = c.srcs;
        const dest = join(image, posix.resolve(workdir, c.dest));
        mkdirSync(dirname(dest), { recursive: true });
        if (c.from === 'build') cpSync(join(work, 'build', s), dest, { recursive: true });
        else if (c.from === 'deps') {
          if (s.endsWith('node_modules')) productionNodeModules(dest);
          else cpSync(join(REPO, posix.basename(s)), dest);
        } else {
          cpSync(join(REPO, s), dest);
        }
      }
    }, 60_000);

    afterAll(() => rmSync(work, { recursive: true, force: true }));

    it('holds every entrypoint the manifests name (their probes are native: nothing else is run in the image)', () => {
      for (const k of KUSTOMIZATIONS) {
        const containers = allContainers(render(join(DEPLOY, k)).objects);
        for (const c of containers) for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe].filter(Boolean)) expect(p.exec).toBeUndefined();
        // Init containers run a `node -e` script (checked below); every other container an app bundle.
        const paths = containers.filter((c: Obj) => c.args[0] !== '-e').map((c: Obj) => c.args[0]);
        expect(paths).toHaveLength(4);
        expect(containers.length - paths.length).toBe(1);
        for (const p of paths) expect({ p, inImage: existsSync(join(image, p)) }).toEqual({ p, inImage: true });
      }
      const cmd = JSON.parse(runtime.instrs.find((x) => x.op === 'CMD')?.args as string);
      expect(existsSync(join(image, cmd[0]))).toBe(true);
    });

    it('bundles need only Node built-ins and production dependencies', () => {
      const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
      const prod = new Set(Object.keys(pkg.dependencies));
      const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
      for (const app of readdirSync(join(image, 'app/dist/apps'))) {
        const code = readFileSync(join(image, 'app/dist/apps', app, 'main.js'), 'utf8');
        const required = [...code.matchAll(/require\("([^"./][^"]*)"\)/g)].map((m) => m[1]);
        expect(required.length).toBeGreaterThan(0);
        for (const r of required) {
          if (builtins.has(r)) continue;
          const name = r.startsWith('@') ? r.split('/').slice(0, 2).join('/') : r.split('/')[0];
          expect({ app, name, production: prod.has(name) }).toEqual({ app, name, production: true });
        }
      }
    });

    it('the init container seed-vault-key runs in the image with its entrypoint (node -e, built-ins only), seeds a key once and writes nothing into the image', async () => {
      const sts = render(join(DEPLOY, 'base')).objects.find((o: Obj) => o.kind === 'StatefulSet')!;
      const init = sts.spec.template.spec.initContainers[0];
      const entrypoint = JSON.parse(runtime.instrs.find((x) => x.op === 'ENTRYPOINT')?.args as string) as string[];
      const before = imageTree();
      const seedDir = join(work, 'seed');
      mkdirSync(seedDir, { recursive: true });
      const keyText = `${JSON.stringify({ version: 1, key: Buffer.alloc(32, 7).toString('base64'), createdUnixMs: 1 })}\n`;
      writeFileSync(join(seedDir, 'vault-key.json'), keyText);
      const keyDir = join(work, 'claim', 'keys');
      const runInit = () =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const child = execFile(process.execPath, [...entrypoint.slice(1), ...init.args], {
            cwd: join(image, 'app'),
            env: { PATH: process.env['PATH'], NODE_ENV: 'production', VAULT_KEY_SEED_FILE: join(seedDir, 'vault-key.json'), CRYPTO_KEY_DIR: keyDir },
          });
          let out = '';
          child.stdout?.on('data', (d) => (out += d));
          child.stderr?.on('data', (d) => (out += d));
          child.on('exit', (code) => resolve({ code, out }));
        });
      expect(entrypoint[0]).toBe('node');
      const first = await runInit();
      expect([first.code, JSON.parse(first.out).msg]).toEqual([0, 'vault key seeded from the Secret']);
      expect(readFileSync(join(keyDir, 'vault-key.json'), 'utf8')).toBe(keyText);
      // A changed Secret (stale or not) never replaces the key on the claim.
      writeFileSync(join(seedDir, 'vault-key.json'), `${JSON.stringify({ version: 1, key: Buffer.alloc(32, 9).toString('base64'), createdUnixMs: 2 })}\n`);
      const second = await runInit();
      expect([second.code, JSON.parse(second.out).msg]).toEqual([0, expect.stringContaining('kept')]);
      expect(readFileSync(join(keyDir, 'vault-key.json'), 'utf8')).toBe(keyText);
      expect(readdirSync(keyDir)).toEqual(['vault-key.json']);
      // A Secret entry that is not a key file stops the pod (non-zero exit) and writes no key.
      rmSync(keyDir, { recursive: true });
      writeFileSync(join(seedDir, 'vault-key.json'), 'not json');
      const bad = await runInit();
      expect([bad.code, JSON.parse(bad.out).level]).toEqual([1, 50]);
      expect(existsSync(join(keyDir, 'vault-key.json'))).toBe(false);
      expect(imageTree()).toEqual(before);
    });

    const standalone: [string, Record<string, string>][] = [
      ['storage-service', { STORAGE_HOST: '127.0.0.1', STORAGE_PORT: '0', STORAGE_DATA_DIR: 'data' }],
      ['crypto-service', { CRYPTO_HOST: '127.0.0.1', CRYPTO_PORT: '0', CRYPTO_KEY_DIR: 'keys' }],
      ['gateway', { GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', GATEWAY_NODE_ADDRESS: '127.0.0.1:9', GATEWAY_DATA_DIR: 'gateway' }],
    ];
    /** Every path in the image's /app except the node_modules links. */
    const imageTree = () => filesUnderAbs(join(image, 'app')).filter((f) => !f.includes('/node_modules/')).sort();

    it.each(standalone)('%s starts from the image layout with production dependencies only, writes nothing into the image, and stops on SIGTERM', async (app, appEnv) => {
      const before = imageTree();
      const dirs = Object.fromEntries(Object.entries(appEnv).map(([k, v]) => [k, /_DIR$/.test(k) ? join(work, v) : v]));
      const child = execFile(process.execPath, ['--enable-source-maps', '--single-threaded-gc', '--max-semi-space-size=2', join(image, `app/dist/apps/${app}/main.js`)], {
        cwd: join(image, 'app'),
        env: { PATH: process.env['PATH'], LOG_LEVEL: 'info', ...dirs },
      });
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (d) => {
          out += d;
          if (out.includes('"listening"')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      const exited = new Promise((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // Read-only root filesystem in the pod: the app wrote only into the directories it was given.
      expect(imageTree()).toEqual(before);
    });
  });
});
