/**
 * Architecture rule from CONVENTIONS.md, checked rather than hoped for: domain code imports no transport
 * or framework (no @grpc/*, @nestjs/*, rxjs), and no app imports another app's code.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '../../..');

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}

const importsOf = (file: string) => [...readFileSync(file, 'utf8').matchAll(/(?:from\s+|import\s*\(|require\()\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);

const apps = readdirSync(join(ROOT, 'apps'));

describe('module boundaries', () => {
  // The gateway keeps its framework-free logic in streaming.ts and paths.ts rather than a domain/ folder.
  const domainFiles: [string, string[]][] = [
    ...['crypto-service', 'storage-service', 'peer-node'].map((a): [string, string[]] => [a, tsFiles(join(ROOT, 'apps', a, 'src', 'domain'))]),
    ['gateway', ['streaming.ts', 'paths.ts'].map((f) => join(ROOT, 'apps/gateway/src', f))],
  ];

  it.each(domainFiles)('%s: domain code imports no gRPC, Nest or rxjs', (_app, files) => {
    expect(files.length).toBeGreaterThan(0);
    const offenders = files.flatMap((f) => importsOf(f).filter((i) => /^(@grpc\/|@nestjs\/|rxjs)/.test(i)).map((i) => `${relative(ROOT, f)} imports ${i}`));
    expect(offenders).toEqual([]);
  });

  it('no app imports another app', () => {
    const offenders: string[] = [];
    for (const app of apps) {
      for (const f of tsFiles(join(ROOT, 'apps', app, 'src'))) {
        for (const i of importsOf(f)) {
          const other = apps.find((a) => a !== app && (i.includes(`apps/${a}/`) || i.includes(`../${a}/`)));
          if (other) offenders.push(`${relative(ROOT, f)} imports ${i}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
