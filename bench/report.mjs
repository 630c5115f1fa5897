// Results writer for `npm run bench` (bench/run.mjs): formats the one table (text for the terminal,
// Markdown for bench/results/bench.md) and draws the chart (bench/results/bench.svg, plain SVG written
// by hand: no dependency). Input: the result object run.mjs builds:
//   { date, load, node, settings: {...}, processes: [name...], memoryLimitMiB,
//     rows: [{ scenario, value, unit, reference, referenceNote, target, peakRssMiB: {process: MiB}, note }] }
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? '–' : typeof v === 'number' ? v.toFixed(digits) : String(v));

/** The table as rows of cells: header first. */
function cells(result) {
  // Process columns: peak RSS in MiB, named short (n1/peer = node1's peer-node).
  const head = ['scenario', 'result', 'unit', 'Go original', 'target', ...result.processes.map((p) => p.replace(/^node/, 'n'))];
  const rows = result.rows.map((r) => [
    r.scenario,
    fmt(r.value, r.unit === 'files/s' ? 0 : 1),
    r.unit,
    r.reference === null ? '–' : fmt(r.reference, 0),
    r.target === null ? '–' : `≥ ${fmt(r.target, 0)}`,
    ...result.processes.map((p) => (r.peakRssMiB[p] === undefined ? '–' : String(Math.round(r.peakRssMiB[p])))),
  ]);
  return [head, ...rows];
}

/** Plain-text table for the terminal (columns padded). */
export function textTable(result) {
  const t = cells(result);
  const widths = t[0].map((_, c) => Math.max(...t.map((row) => row[c].length)));
  const line = (row) => row.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ');
  return ['peak RSS per process in MiB (VmHWM during the scenario); MB = 10^6 B', line(t[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...t.slice(1).map(line)].join('\n');
}

/** Markdown: the table plus the conditions it was measured under. */
export function markdown(result) {
  const t = cells(result);
  const md = [
    `# distri_vault benchmark (${result.date})`,
    '',
    `Written by \`npm run bench\` (bench/run.mjs). ${result.machine}; load average at start ${result.load}.`,
    `Settings: ${Object.entries(result.settings).map(([k, v]) => `${k}=${v}`).join(', ')}. MB = 10^6 B.`,
    '',
    `| ${t[0].join(' | ')} |`,
    `| ${t[0].map((_, c) => (c < 1 ? '---' : '---:')).join(' | ')} |`,
    ...t.slice(1).map((row) => `| ${row.join(' | ')} |`),
    '',
    'Peak RSS is each process\'s VmHWM during that scenario (reset to the current RSS before each one through',
    '`/proc/<pid>/clear_refs`). Memory a process freed but kept (glibc does not trim below 1 GiB with the',
    'launcher\'s GLIBC_TUNABLES) stays in its RSS, so a later row never shows less than the process kept from',
    'the rows before; the recovery row shows the recovering node\'s fresh processes. "Go original"',
    'and the targets are the figures of issue #8: the Go implementation stored 128 MiB to owner + 2 peers at',
    'about 91 MB/s and read it back at about 105 MB/s; the targets are twice those, and 1,270 small files/s',
    `(10× its best). The issue's memory target is ≤ ${result.memoryLimitMiB} MiB per process.`,
    '',
    ...result.rows.filter((r) => r.note).map((r) => `- ${r.scenario}: ${r.note}`),
    '',
    '![chart](bench.svg)',
    '',
  ];
  return md.join('\n');
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The chart: on the left one panel per throughput row (ours, the Go original, the target, each its own
 * scale); on the right the peak RSS of every process per scenario, with the memory target as a line.
 */
export function svg(result) {
  const W = 1100;
  const rows = result.rows;
  const panelH = 70;
  const leftW = 470;
  const H = Math.max(rows.length * (panelH + 30) + 80, 420);
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="16" y="24" font-size="16" font-weight="bold">distri_vault bench, ${esc(result.date.slice(0, 16).replace('T', ' '))} UTC</text>`);
  out.push(`<text x="16" y="42" fill="#555">${esc(result.machine)}; load ${esc(result.load)}; ${esc(result.settings.size)} files, R=3</text>`);
  const colours = { ours: '#2b6cb0', reference: '#a0aec0', target: '#ed8936' };
  rows.forEach((r, i) => {
    const y0 = 70 + i * (panelH + 30);
    out.push(`<text x="16" y="${y0}" font-weight="bold">${esc(r.scenario)} (${esc(r.unit)})</text>`);
    const bars = [
      ['this build', r.value, colours.ours],
      ['Go original', r.reference, colours.reference],
      ['target', r.target, colours.target],
    ].filter(([, v]) => typeof v === 'number' && !Number.isNaN(v));
    const max = Math.max(...bars.map(([, v]) => v), 1);
    bars.forEach(([label, v, colour], j) => {
      const y = y0 + 8 + j * 20;
      const w = Math.max(1, ((leftW - 190) * v) / max);
      out.push(`<text x="16" y="${y + 12}" fill="#333">${esc(label)}</text>`);
      out.push(`<rect x="100" y="${y}" width="${w.toFixed(1)}" height="15" fill="${colour}"/>`);
      out.push(`<text x="${(104 + w).toFixed(1)}" y="${y + 12}">${esc(fmt(v, r.unit === 'files/s' ? 0 : 1))}</text>`);
    });
  });
  // Right panel: peak RSS per process, one group of bars per scenario.
  const x0 = leftW + 60;
  const plotW = W - x0 - 20;
  const top = 70;
  const plotH = H - top - 120;
  const all = rows.flatMap((r) => Object.values(r.peakRssMiB));
  const maxMiB = Math.max(result.memoryLimitMiB * 1.2, ...all) * 1.05;
  const yOf = (m) => top + plotH - (plotH * m) / maxMiB;
  out.push(`<text x="${x0}" y="${top - 12}" font-weight="bold">peak RSS per process (MiB), per scenario</text>`);
  out.push(`<line x1="${x0}" y1="${top + plotH}" x2="${x0 + plotW}" y2="${top + plotH}" stroke="#333"/>`);
  for (let m = 0; m <= maxMiB; m += 50) {
    out.push(`<line x1="${x0 - 4}" y1="${yOf(m).toFixed(1)}" x2="${x0}" y2="${yOf(m).toFixed(1)}" stroke="#333"/><text x="${x0 - 8}" y="${(yOf(m) + 4).toFixed(1)}" text-anchor="end" fill="#555">${m}</text>`);
  }
  const procs = result.processes;
  const palette = ['#1a202c', '#2b6cb0', '#63b3ed', '#bee3f8', '#2f855a', '#68d391', '#c6f6d5', '#9c4221', '#ed8936', '#fbd38d'];
  const groupW = plotW / rows.length;
  const barW = Math.max(2, (groupW - 16) / procs.length);
  rows.forEach((r, i) => {
    const gx = x0 + i * groupW + 8;
    procs.forEach((p, j) => {
      const v = r.peakRssMiB[p];
      if (v === undefined) return;
      out.push(`<rect x="${(gx + j * barW).toFixed(1)}" y="${yOf(v).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(top + plotH - yOf(v)).toFixed(1)}" fill="${palette[j % palette.length]}"><title>${esc(p)}: ${Math.round(v)} MiB</title></rect>`);
    });
    out.push(`<text x="${(gx + (groupW - 16) / 2).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${esc(r.scenario.split(' ')[0])}</text>`);
  });
  const ly = yOf(result.memoryLimitMiB).toFixed(1);
  out.push(`<line x1="${x0}" y1="${ly}" x2="${x0 + plotW}" y2="${ly}" stroke="#e53e3e" stroke-dasharray="6 4"/><text x="${x0 + plotW}" y="${Number(ly) - 4}" text-anchor="end" fill="#e53e3e">target ${result.memoryLimitMiB} MiB</text>`);
  procs.forEach((p, j) => {
    const lx = x0 + (j % 5) * (plotW / 5);
    const ly2 = top + plotH + 36 + Math.floor(j / 5) * 18;
    out.push(`<rect x="${lx.toFixed(1)}" y="${ly2 - 10}" width="12" height="12" fill="${palette[j % palette.length]}"/><text x="${(lx + 16).toFixed(1)}" y="${ly2}">${esc(p)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Writes bench.json, bench.md and bench.svg into `dir`; returns their paths. */
export function writeReport(result, dir) {
  mkdirSync(dir, { recursive: true });
  const files = { json: join(dir, 'bench.json'), md: join(dir, 'bench.md'), svg: join(dir, 'bench.svg') };
  writeFileSync(files.json, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(files.md, markdown(result));
  writeFileSync(files.svg, svg(result));
  return files;
}
