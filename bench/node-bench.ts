// Benchmarks that need a store or a running node: checkpoint time vs data
// size (O(1) by design: hard links) and p99 write latency with and without a
// concurrent hot backup.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { GutsStore } from '../src/store';
import { BenchResult, CLI, loadAverage, machineInfo, round, stat } from './lib';
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

async function startNode(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(CLI[0], [CLI[1], 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] });
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

function post(url: string, body: string): Promise<number> {
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

/** Fixed-rate writer: `rate` batches/s for `seconds`; returns latencies (ms). */
async function writeLoad(url: string, seconds: number, rate: number, tag: string): Promise<number[]> {
  const lat: number[] = [];
  const end = Date.now() + seconds * 1000;
  let n = 0;
  const inflight: Promise<void>[] = [];
  const errors: Error[] = [];
  while (Date.now() < end) {
    const objects = Array.from({ length: 16 }, (_, i) => ({ type: 'blob', data: Buffer.from(`${tag} ${n} ${i} ${'x'.repeat(200 + ((n * 31 + i) % 2000))}`).toString('base64') }));
    inflight.push(
      post(`${url}/api/repos/bench/load/objects`, JSON.stringify({ objects })).then(
        (ms) => void lat.push(ms),
        (e: Error) => void errors.push(e),
      ),
    );
    n++;
    const next = n * (1000 / rate);
    const wait = next - (seconds * 1000 - (end - Date.now()));
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inflight);
  if (errors.length) throw new Error(`${errors.length} of ${inflight.length} write batches failed: ${errors[0].message}`);
  return lat;
}

function p99(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))];
}

/** Write load for `seconds` while hot backups run back to back; their wall times (s). */
async function hotBackupWindow(url: string, env: BenchEnv, archive: string, seconds: number, tag: string, flags: string[]) {
  let stop = false;
  const backups: number[] = [];
  const loop = (async () => {
    while (!stop) {
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        const b = spawn(CLI[0], [CLI[1], 'backup', 'create', '--hot', ...flags, '--data-dir', env.dataDir, '--output', archive, '--force'], { stdio: 'ignore' });
        b.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`hot backup exited ${c}`))));
      });
      backups.push(round(Number(process.hrtime.bigint() - t0) / 1e9, 2));
    }
  })();
  const lat = await writeLoad(url, seconds, 100, tag);
  stop = true;
  await loop;
  return { lat, backups };
}

export async function latencyBench(env: BenchEnv, seconds: number): Promise<BenchResult> {
  const before = loadAverage();
  const { child, url } = await startNode(env.dataDir);
  const archive = path.join(env.work, 'hot.tar.zst');
  try {
    const idle = await writeLoad(url, seconds, 100, 'idle');
    const bg = await hotBackupWindow(url, env, archive, seconds, 'bg', []);
    const fg = await hotBackupWindow(url, env, archive, seconds, 'fg', ['--foreground']);
    const phases = [
      { label: 'writes during hot backups (background priority, the default)', lat: bg.lat, b: bg.backups },
      { label: 'writes during hot backups --foreground', lat: fg.lat, b: fg.backups },
      { label: 'writes, no backup', lat: idle },
    ];
    const base = p99(idle);
    const subjects = phases.map((s) => ({
      label: s.label,
      command: `POST /api/repos/bench/load/objects, 16 objects/batch, 100 batches/s, ${seconds}s`,
      ratio_vs_baseline: round(p99(s.lat) / base, 2),
      extra: {
        p50_ms: round(stat(s.lat).median, 2),
        p99_ms: round(p99(s.lat), 2),
        max_ms: round(Math.max(...s.lat), 1),
        batches: s.lat.length,
        ...(s.b ? { backups: s.b.length, backup_s: stat(s.b).median } : {}),
      },
    }));
    return {
      name: 'write-latency',
      baseline: 'writes, no backup',
      ratio_desc: 'p99 / p99 of writes, no backup',
      runs: 1,
      data: { seconds, hot_backups_completed: bg.backups.length, foreground_backups_completed: fg.backups.length },
      dataset: env.dataset,
      machine: machineInfo(),
      load: { before, after: loadAverage() },
      columns: [
        ['p50 ms', 'p50_ms'],
        ['p99 ms', 'p99_ms'],
        ['max ms', 'max_ms'],
        ['batches', 'batches'],
        ['backups', 'backups'],
        ['backup s', 'backup_s'],
      ],
      subjects,
      notes: [
        `p99 with concurrent hot backups / without: ${subjects[0].ratio_vs_baseline}× (target ≤ 1.5×); --foreground: ${subjects[1].ratio_vs_baseline}×`,
      ],
      date: new Date().toISOString(),
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
}
