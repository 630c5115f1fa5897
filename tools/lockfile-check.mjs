#!/usr/bin/env node
/**
 * Is package-lock.json what was committed, up to other platforms' optional packages?
 *
 * `npm install` (run by CI, since `npm ci` cannot be trusted here: TOOLCHAIN.md) writes into the lockfile
 * the optional native packages of other platforms (`@swc/core-darwin-arm64`, `@bufbuild/buf-win32-x64`, …)
 * whenever the registry it reaches serves their metadata, and the registries these machines reach have
 * differed from one day to the next on that. Those entries are never installed here and change nothing
 * that runs here, so this check ignores them on both sides; every other difference — a version, an
 * integrity hash, a package added or removed for this platform — fails it.
 *
 * Usage: node tools/lockfile-check.mjs [ref]   (compares the working tree's lockfile with ref, default HEAD)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';

const ref = process.argv[2] ?? 'HEAD';
const committed = JSON.parse(execFileSync('git', ['show', `${ref}:package-lock.json`], { encoding: 'utf8', maxBuffer: 64 << 20 }));
const current = JSON.parse(readFileSync('package-lock.json', 'utf8'));

/** True for an entry npm would never install on this platform (optional, and its os/cpu list excludes us). */
const foreign = (entry) => {
  if (!entry?.optional) return false;
  const excludes = (list, value) => Array.isArray(list) && !list.some((v) => v === value || (v.startsWith('!') ? v.slice(1) !== value : false));
  return excludes(entry.os, process.platform) || excludes(entry.cpu, process.arch);
};

const strip = (lock) => ({
  ...lock,
  packages: Object.fromEntries(Object.entries(lock.packages ?? {}).filter(([, entry]) => !foreign(entry))),
});

const a = strip(committed);
const b = strip(current);
if (isDeepStrictEqual(a, b)) {
  const ignored = Object.keys(current.packages ?? {}).length - Object.keys(b.packages).length;
  console.log(`package-lock.json matches ${ref} (${ignored} other-platform optional entries not compared)`);
  process.exit(0);
}
const names = new Set([...Object.keys(a.packages), ...Object.keys(b.packages)]);
const changed = [...names].filter((n) => !isDeepStrictEqual(a.packages[n], b.packages[n]));
const top = Object.keys({ ...a, ...b }).filter((k) => k !== 'packages' && !isDeepStrictEqual(a[k], b[k]));
console.error(`package-lock.json differs from ${ref}:`);
for (const k of top) console.error(`  top-level field ${k}`);
for (const n of changed.slice(0, 40)) console.error(`  ${n || '(root)'}: ${a.packages[n] ? (b.packages[n] ? 'changed' : 'removed') : 'added'}`);
if (changed.length > 40) console.error(`  … and ${changed.length - 40} more`);
process.exit(1);
