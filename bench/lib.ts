// Benchmark plumbing: run commands (ours and the baselines) alternately in the
// same run, take wall time and peak RSS from GNU time, report medians with
// min/max and the ratio to a baseline. Never asserts: it reports.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = [process.execPath, path.join(ROOT, 'bin', 'guts-node.js')];
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');

export interface Sample {
  wall_s: number;
  peak_rss_mb: number;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export interface SubjectResult {
  label: string;
  command: string;
  wall_s: Stat;
  peak_rss_mb: Stat;
  /** ratio of this subject's median wall time to the baseline's (lower is faster) */
  ratio_vs_baseline?: number;
  extra?: Record<string, number | string>;
}

export interface BenchResult {
  name: string;
  baseline: string;
  runs: number;
  data: Record<string, unknown>;
  machine: ReturnType<typeof machineInfo>;
  subjects: SubjectResult[];
  notes: string[];
  date: string;
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    mem_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
  };
}

export function stat(values: number[]): Stat {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median: round(median), min: round(s[0]), max: round(s[s.length - 1]) };
}

export function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Runs a shell command under GNU time; throws with stderr if it fails. */
export function timeShell(command: string, env: NodeJS.ProcessEnv = {}): Sample {
  const out = path.join(os.tmpdir(), `guts-bench-time-${process.pid}`);
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', out, 'bash', '-o', 'pipefail', '-c', command], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`benchmark command failed (${r.status}): ${command}\n${r.stderr?.toString().slice(-2000)}`);
  const [wall, rssKb] = fs.readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(out, { force: true });
  return { wall_s: wall, peak_rss_mb: round(rssKb / 1024, 1) };
}

export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function cli(...args: string[]): string {
  return [...CLI, ...args].map(q).join(' ');
}

export interface Subject {
  label: string;
  command: string;
  /** run before each timed run (untimed), e.g. removing the previous output */
  prepare?: () => void;
  /** measured after the run, e.g. output size */
  measure?: () => Record<string, number | string>;
}

/** Alternates subjects for `runs` rounds (rotating the order each round). */
export function compare(name: string, subjects: Subject[], runs: number, data: Record<string, unknown>, notes: string[] = []): BenchResult {
  const samples = subjects.map(() => [] as Sample[]);
  const extras = subjects.map(() => ({}) as Record<string, number | string>);
  for (let round = 0; round < runs; round++) {
    for (let k = 0; k < subjects.length; k++) {
      const i = (k + round) % subjects.length;
      const s = subjects[i];
      s.prepare?.();
      samples[i].push(timeShell(s.command));
      if (s.measure) Object.assign(extras[i], s.measure());
    }
  }
  const results: SubjectResult[] = subjects.map((s, i) => ({
    label: s.label,
    command: s.command,
    wall_s: stat(samples[i].map((x) => x.wall_s)),
    peak_rss_mb: stat(samples[i].map((x) => x.peak_rss_mb)),
    ...(Object.keys(extras[i]).length ? { extra: extras[i] } : {}),
  }));
  const base = results[results.length - 1];
  for (const r of results) r.ratio_vs_baseline = base.wall_s.median > 0 ? round(r.wall_s.median / base.wall_s.median) : undefined;
  return { name, baseline: base.label, runs, data, machine: machineInfo(), subjects: results, notes, date: new Date().toISOString() };
}

export function printTable(r: BenchResult): void {
  const lines = [`\n## ${r.name}  (median of ${r.runs}; ratio = median / ${r.baseline})`];
  const rows = r.subjects.map((s) => [
    s.label,
    `${s.wall_s.median.toFixed(2)} s`,
    `${s.wall_s.min.toFixed(2)}–${s.wall_s.max.toFixed(2)}`,
    `${s.peak_rss_mb.median.toFixed(0)} MB`,
    s.ratio_vs_baseline !== undefined ? `${s.ratio_vs_baseline.toFixed(2)}×` : '',
    s.extra ? Object.entries(s.extra).map(([k, v]) => `${k}=${v}`).join(' ') : '',
  ]);
  const head = ['subject', 'wall', 'min–max', 'peak RSS', 'ratio', 'notes'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => '| ' + row.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  lines.push(fmt(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(fmt));
  for (const n of r.notes) lines.push(`  ${n}`);
  process.stdout.write(lines.join('\n') + '\n');
}

export function saveResult(r: BenchResult): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${r.name}.json`);
  fs.writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}

export function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

export function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}
