'use strict';
/**
 * Memory probe, preloaded into app processes by the benches (node --require bench/mem-probe.cjs, via
 * VAULT_NODE_ARGS): samples process.memoryUsage() every VAULT_MEM_PROBE_MS (50) ms and keeps the peak of
 * each field (rss, heapTotal, heapUsed, external, arrayBuffers), and writes them as JSON to
 * <VAULT_MEM_PROBE_DIR>/<pid>.json every second and at exit. Shows where a process's peak RSS goes: V8 heap,
 * Buffers outside the heap (external/arrayBuffers), or neither (malloc arenas, code, thread stacks).
 * VAULT_MEM_PROBE_TIMELINE=1 also records [unix ms, rss, heapUsed, arrayBuffers] (MiB) every other sample.
 */
const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.VAULT_MEM_PROBE_DIR;
if (dir) {
  const every = Number(process.env.VAULT_MEM_PROBE_MS ?? 50);
  const peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  const script = process.argv[1] ?? '';
  const name = path.basename(path.dirname(script));
  const file = path.join(dir, `${process.pid}.json`);
  const timeline = [];
  let n = 0;
  const sample = () => {
    const m = process.memoryUsage();
    if (process.env.VAULT_MEM_PROBE_TIMELINE && n++ % 2 === 0) timeline.push([Date.now(), Math.round(m.rss / 1048576), Math.round(m.heapUsed / 1048576), Math.round(m.arrayBuffers / 1048576)]);
    for (const k of Object.keys(peak)) if (m[k] > peak[k]) peak[k] = m[k];
  };
  const flush = () => {
    try {
      fs.writeFileSync(file, JSON.stringify({ pid: process.pid, app: name, peak, timeline }));
    } catch {
      /* the directory may be gone at shutdown */
    }
  };
  fs.mkdirSync(dir, { recursive: true });
  setInterval(sample, every).unref();
  setInterval(flush, 1000).unref();
  process.on('exit', () => {
    sample();
    flush();
  });
}
