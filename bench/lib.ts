// Benchmark plumbing: run commands (ours and the baselines) alternately in the
// same run, take wall time and peak RSS from GNU time, report medians with
// min/max and the ratio to a baseline. Never asserts: it reports.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
// GUTS_BENCH_CLI: another build's bin/guts-node.js (an old commit's tree, for before/after in the same run)
export const CLI = [process.execPath, process.env.GUTS_BENCH_CLI || path.join(ROOT, 'bin', 'guts-node.js')];
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');

export interface Sample {
  wall_s: number;
  /** user + system CPU seconds of the command and its children */
  cpu_s: number;
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
  /** absent where a suite measures something else (latency, checkpoint) */
  wall_s?: Stat;
  cpu_s?: Stat;
  peak_rss_mb?: Stat;
  /** ratio of this subject's median wall time to the baseline's (lower is faster) */
  ratio_vs_baseline?: number;
  extra?: Record<string, number | string>;
}

export interface BenchResult {
  name: string;
  baseline: string;
  runs: number;
  data: Record<string, unknown>;
  /** the seeded data set the suite ran on (bytes, objects, compressibility) */
  dataset?: Dataset;
  machine: ReturnType<typeof machineInfo>;
  /** 1-minute load average before and after the suite: a shared machine makes wall times noisy */
  load?: { before: number; after: number };
  /** what `ratio` means when it is not median wall time / the baseline's */
  ratio_desc?: string;
  /** extra columns to print, in order: [header, key of `extra`] */
  columns?: Array<[string, string]>;
  subjects: SubjectResult[];
  notes: string[];
  date: string;
}

export interface Dataset {
  seed_size: string;
  data_dir_bytes: number;
  sst_bytes: number;
  sst_files: number;
  objects: { commit: number; tree: number; blob: number; tag: number; total: number };
  repositories: number;
  /** uncompressed object bytes (type byte excluded), from verify --full */
  object_bytes?: number;
  /** sst_bytes / object_bytes: what RocksDB's snappy left */
  snappy_ratio?: number;
  /** bytes of `tar -cf - db consensus` and of that tar through `zstd -3`: what is left to compress */
  tar_bytes?: number;
  zstd3_bytes?: number;
  zstd3_ratio?: number;
}

let startupCache: number | undefined;

/** Median wall time of `guts-node --version` (Node start + CLI load), measured once per run. */
export function cliStartup(): number {
  if (startupCache === undefined) {
    const s: number[] = [];
    for (let i = 0; i < 5; i++) s.push(timeShell(cli('--version')).wall_s);
    startupCache = stat(s).median;
  }
  return startupCache;
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    mem_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
    cli_startup_s: cliStartup(),
  };
}

export function loadAverage(): number {
  return round(os.loadavg()[0], 2);
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
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, 'bash', '-o', 'pipefail', '-c', command], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`benchmark command failed (${r.status}): ${command}\n${r.stderr?.toString().slice(-2000)}`);
  const [wall, user, sys, rssKb] = fs.readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(out, { force: true });
  return { wall_s: wall, cpu_s: round(user + sys, 2), peak_rss_mb: round(rssKb / 1024, 1) };
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
  const before = loadAverage();
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
    cpu_s: stat(samples[i].map((x) => x.cpu_s)),
    peak_rss_mb: stat(samples[i].map((x) => x.peak_rss_mb)),
    ...(Object.keys(extras[i]).length ? { extra: extras[i] } : {}),
  }));
  const base = results[results.length - 1];
  for (const r of results) r.ratio_vs_baseline = base.wall_s!.median > 0 ? round(r.wall_s!.median / base.wall_s!.median) : undefined;
  const load = { before, after: loadAverage() };
  return { name, baseline: base.label, runs, data, machine: machineInfo(), load, subjects: results, notes, date: new Date().toISOString() };
}

/**
 * Prints the suite as a table. Wall / CPU / peak RSS columns appear only when
 * some subject has them (latency and checkpoint suites measure other things);
 * `columns` lists the suite's own figures from `extra`; other extras go to notes.
 */
export function printTable(r: BenchResult): void {
  const lines = [`\n## ${r.name}  (${r.runs > 1 ? `median of ${r.runs}; ` : ''}ratio = ${r.ratio_desc ?? `median / ${r.baseline}`})`];
  const cols: Array<[string, (s: SubjectResult) => string]> = [['subject', (s) => s.label]];
  const has = (f: (s: SubjectResult) => Stat | undefined) => r.subjects.some((s) => f(s) && f(s)!.median > 0);
  if (has((s) => s.wall_s)) {
    cols.push(['wall', (s) => (s.wall_s ? `${s.wall_s.median.toFixed(2)} s` : '')]);
    cols.push(['min–max', (s) => (s.wall_s ? `${s.wall_s.min.toFixed(2)}–${s.wall_s.max.toFixed(2)}` : '')]);
  }
  if (has((s) => s.cpu_s)) cols.push(['cpu', (s) => (s.cpu_s ? `${s.cpu_s.median.toFixed(2)} s` : '')]);
  if (has((s) => s.peak_rss_mb)) cols.push(['peak RSS', (s) => (s.peak_rss_mb ? `${s.peak_rss_mb.median.toFixed(0)} MB` : '')]);
  const shown = new Set<string>();
  for (const [head, key] of r.columns ?? []) {
    shown.add(key);
    cols.push([head, (s) => (s.extra?.[key] !== undefined ? String(s.extra[key]) : '')]);
  }
  cols.push(['ratio', (s) => (s.ratio_vs_baseline !== undefined ? `${s.ratio_vs_baseline.toFixed(2)}×` : '')]);
  cols.push(['notes', (s) => Object.entries(s.extra ?? {}).filter(([k]) => !shown.has(k)).map(([k, v]) => `${k}=${v}`).join(' ')]);
  const used = cols.filter(([, f], i) => i === 0 || r.subjects.some((s) => f(s) !== ''));
  const rows = r.subjects.map((s) => used.map(([, f]) => f(s)));
  const head = used.map(([h]) => h);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => '| ' + row.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  lines.push(fmt(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(fmt));
  for (const n of r.notes) lines.push(`  ${n}`);
  if (r.load) lines.push(`  load average ${r.load.before} → ${r.load.after} (2 cores; above ~0.5 other work shares the machine)`);
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
