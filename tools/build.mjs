#!/usr/bin/env node
// Bundles each app's src/main.ts into dist/apps/<app>/main.js with esbuild (node_modules stay external;
// tsconfig path aliases are resolved). `node tools/build.mjs gateway peer-node` builds only those.
// esbuild emits no decorator metadata: Nest providers are injected with explicit @Inject(...) tokens.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
export const APPS = ['crypto-service', 'storage-service', 'peer-node', 'gateway', 'cli'];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const apps = wanted.length ? wanted : APPS;

const started = Date.now();
await Promise.all(
  apps.map((app) =>
    build({
      entryPoints: [join(root, 'apps', app, 'src/main.ts')],
      outfile: join(root, 'dist/apps', app, 'main.js'),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      packages: 'external',
      sourcemap: true,
      tsconfig: join(root, 'tsconfig.base.json'),
      logLevel: 'warning',
    }),
  ),
);
if (!process.argv.includes('--quiet')) console.log(`built ${apps.join(', ')} in ${Date.now() - started} ms`);
