// Benchmarks that need a store or a running node: checkpoint time vs data
// size (O(1) by design: hard links) and p99 write latency with and without a
// concurrent hot backup.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { GutsStore } from '../src/store';
import { DEFAULT_BACKGROUND_CPU_SHARE } from '../src/backup';
import { BenchResult, CLI, loadAverage, machineInfo, q, round, stat } from './lib';
import { BenchEnv, seed } from './suites';

export async function checkpointBench(env: BenchEnv, sizes: string[]): Promise<BenchResult> {
  const before = loadAverage();
  const subjects = [];
  for (const size of sizes) {
    const dir = path.join(env.work, `ckpt-${size}`);
    const bytes = seed(dir, size);
    const store = await GutsStore.open(dir);
    const times: number[] = [];
    try {
      for (let i = 0; i < Math.max(5, env.runs); i++) {
        const target = path.join(dir, 'checkpoints', `bench-${i}`);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        const t0 = process.hrtime.bigint();
        await store.native.checkpoint(target, { db: true, consensus: true });
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
        fs.rmSync(target, { recursive: true, force: true });
      }
    } finally {
      await store.close();
    }
    const s = stat(times);
    subjects.push({
      label: `checkpoint of ${size} (${round(bytes / 1e6, 0)} MB on disk)`,
      command: 'store.native.checkpoint(dir, {db, consensus})',
      median_ms: s.median,
      extra: { median_ms: round(s.median, 1), min_ms: round(s.min, 1), max_ms: round(s.max, 1) },
    });
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const first = subjects[0].median_ms;
  return {
    name: 'checkpoint',
    baseline: subjects[0].label,
    ratio_desc: `median / median of the ${sizes[0]} checkpoint`,
    runs: Math.max(5, env.runs),
    data: { sizes },
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [
      ['median', 'median_ms'],
      ['min', 'min_ms'],
      ['max', 'max_ms'],
    ],
    subjects: subjects.map(({ median_ms, ...s }) => ({ ...s, ratio_vs_baseline: round(median_ms / first, 2) })),
    notes: ['target: O(1) in data size and < 50 ms (hard links; a WAL under 64 MiB is copied, a larger one flushed)'],
    date: new Date().toISOString(),
  };
}

export async function startNode(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(CLI[0], [CLI[1], 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } });
  const rl = readline.createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    rl.on('line', (l) => {
      const m = /listening (http:\/\/\S+)/.exec(l);
      if (m) resolve(m[1]);
    });
    child.on('exit', (c) => reject(new Error(`node exited with ${c}`)));
  });
  // listening comes before the store is open: wait for /health/ready
  for (let i = 0; i < 200; i++) {
    const code = await new Promise<number>((resolve) => http.get(`${url}/health/ready`, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', () => resolve(0)));
    if (code === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url };
}

export function post(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, agent: keepAlive }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 });

/**
 * The request bodies of one load phase, built before it starts so that the
 * load generator (on the same machine) does as little as possible while
 * latencies are measured. Every object is new: `tag` is unique per phase.
 */
function loadBodies(count: number, tag: string): string[] {
  return Array.from({ length: count }, (_, n) =>
    JSON.stringify({
      objects: Array.from({ length: 16 }, (_, i) => ({ type: 'blob', data: Buffer.from(`${tag} ${n} ${i} ${'x'.repeat(200 + ((n * 31 + i) % 2000))}`).toString('base64') })),
    }),
  );
}

/** Fixed-rate writer: `rate` batches/s for `seconds`; returns latencies (ms). */
export async function writeLoad(url: string, seconds: number, rate: number, tag: string): Promise<number[]> {
  const bodies = loadBodies(Math.ceil(seconds * rate) + rate, tag);
  const lat: number[] = [];
  const start = Date.now();
  const end = start + seconds * 1000;
  let n = 0;
  const inflight: Promise<void>[] = [];
  const errors: Error[] = [];
  while (Date.now() < end && n < bodies.length) {
    inflight.push(
      post(`${url}/api/repos/bench/load/objects`, bodies[n]).then(
        (ms) => void lat.push(ms),
        (e: Error) => void errors.push(e),
      ),
    );
    n++;
    const wait = start + n * (1000 / rate) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inflight);
  if (errors.length) throw new Error(`${errors.length} of ${inflight.length} write batches failed: ${errors[0].message}`);
  return lat;
}

export function p99(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))];
}

type Background = { kind: 'backup'; flags: string[] } | { kind: 'shell'; command: string };

/** Write load for `seconds` while `bg` runs back to back; its run times (s). */
async function loadWindow(url: string, seconds: number, tag: string, bg: Background | null) {
  let stop = false;
  const runs: number[] = [];
  let failure: Error | null = null;
  const loop = (async () => {
    while (bg && !stop) {
      const t0 = process.hrtime.bigint();
      const [cmd, args] = bg.kind === 'backup' ? [CLI[0], [CLI[1], 'backup', 'create', '--hot', ...bg.flags]] : ['bash', ['-c', bg.command]];
      const code = await new Promise<number | null>((resolve) => spawn(cmd, args, { stdio: 'ignore' }).on('exit', resolve));
      // tar may exit 1 ("file changed as we read it") on a live data dir: it is only load here.
      if (bg.kind === 'backup' && code !== 0) failure = new Error(`hot backup exited ${code}`);
      runs.push(round(Number(process.hrtime.bigint() - t0) / 1e9, 2));
    }
  })();
  const lat = await writeLoad(url, seconds, 100, tag);
  stop = true;
  await loop;
  if (failure) throw failure;
  return { lat, runs };
}

/**
 * p99 write latency at a fixed load (100 batches of 16 objects per second)
 * with and without back-to-back hot backups. Phases alternate over `rounds`
 * after a warm-up (a cold node's first seconds are slower and would flatter
 * the ratio); each figure pools the samples of its phase across rounds. The
 * stock-tool baseline is what an operator would otherwise run beside the
 * node: tar | zstd -T0 -3 of the data dir at idle CPU and I/O priority.
 */
export async function latencyBench(env: BenchEnv, seconds: number, rounds: number): Promise<BenchResult> {
  const before = loadAverage();
  const { child, url } = await startNode(env.dataDir);
  const archive = path.join(env.work, 'hot.tar.zst');
  const backupFlags = ['--data-dir', env.dataDir, '--output', archive, '--force'];
  const stock = `chrt -i 0 ionice -c 3 bash -c ${q(`tar --warning=none --ignore-failed-read -cf - -C ${q(env.dataDir)} db consensus | zstd -T0 -3 -q > ${q(archive + '.stock')}`)}`;
  const phases: Record<string, { label: string; bg: Background | null; lat: number[]; runs: number[]; perRound: number[] }> = {
    idle: { label: 'writes, no backup', bg: null, lat: [], runs: [], perRound: [] },
    hot: { label: `writes during hot backups (idle priority, paced to ${DEFAULT_BACKGROUND_CPU_SHARE * 100}% — the default)`, bg: { kind: 'backup', flags: backupFlags }, lat: [], runs: [], perRound: [] },
    unpaced: { label: 'writes during hot backups --cpu-share 100 (idle priority, not paced)', bg: { kind: 'backup', flags: [...backupFlags, '--cpu-share', '100'] }, lat: [], runs: [], perRound: [] },
    fg: { label: 'writes during hot backups --foreground', bg: { kind: 'backup', flags: [...backupFlags, '--foreground'] }, lat: [], runs: [], perRound: [] },
    stock: { label: 'writes during tar | zstd -T0 -3 at idle CPU and I/O priority', bg: { kind: 'shell', command: stock }, lat: [], runs: [], perRound: [] },
  };
  try {
    await writeLoad(url, Math.round(seconds * 1.5), 100, 'warmup');
    for (let r = 0; r < rounds; r++) {
      // idle and hot every round; the other phases once, spread over the rounds
      const order = ['idle', 'hot', ...(r === 0 ? ['stock'] : []), ...(r === rounds - 1 ? ['unpaced', 'fg'] : [])];
      for (const name of order) {
        const ph = phases[name];
        const w = await loadWindow(url, seconds, `${name}-${r}`, ph.bg);
        ph.lat.push(...w.lat);
        ph.runs.push(...w.runs);
        ph.perRound.push(p99(w.lat));
      }
    }
    const base = p99(phases.idle.lat);
    const subjects = ['hot', 'unpaced', 'fg', 'stock', 'idle'].map((name) => {
      const s = phases[name];
      return {
        label: s.label,
        command: s.bg ? (s.bg.kind === 'backup' ? `guts-node backup create --hot ${s.bg.flags.filter((f) => !backupFlags.includes(f)).join(' ')}`.trim() : 'tar | zstd -T0 -3 (chrt -i 0, ionice -c 3)') : '',
        ratio_vs_baseline: round(p99(s.lat) / base, 2),
        extra: {
          p50_ms: round(stat(s.lat).median, 2),
          p99_ms: round(p99(s.lat), 2),
          p99_per_round_ms: s.perRound.map((v) => round(v, 2)).join(' '),
          max_ms: round(Math.max(...s.lat), 1),
          batches: s.lat.length,
          ...(s.bg ? { runs: s.runs.length, run_s: stat(s.runs).median } : {}),
        },
      };
    });
    const hotRatios = phases.hot.perRound.map((v, i) => v / phases.idle.perRound[i]);
    return {
      name: 'write-latency',
      baseline: 'writes, no backup',
      ratio_desc: 'p99 / p99 of writes, no backup (samples pooled over rounds)',
      runs: rounds,
      data: { seconds_per_phase: seconds, rounds, rate: '100 batches/s of 16 objects', hot_backups_completed: phases.hot.runs.length },
      dataset: env.dataset,
      machine: machineInfo(),
      load: { before, after: loadAverage() },
      columns: [
        ['p50 ms', 'p50_ms'],
        ['p99 ms', 'p99_ms'],
        ['p99/round', 'p99_per_round_ms'],
        ['max ms', 'max_ms'],
        ['batches', 'batches'],
        ['runs', 'runs'],
        ['run s', 'run_s'],
      ],
      subjects,
      notes: [
        `p99 during hot backups / without: ${subjects[0].ratio_vs_baseline}× pooled, per round ${hotRatios.map((v) => round(v, 2)).join(', ')} (target ≤ 1.5×); ` +
          `not paced ${subjects[1].ratio_vs_baseline}×, --foreground ${subjects[2].ratio_vs_baseline}×, stock tar | zstd at idle priority ${subjects[3].ratio_vs_baseline}×`,
        `a paced hot backup took ${subjects[0].extra.run_s} s, an unpaced one ${subjects[1].extra.run_s} s (back to back, including the CLI start)`,
      ],
      date: new Date().toISOString(),
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
    fs.rmSync(archive + '.stock', { force: true });
  }
}
