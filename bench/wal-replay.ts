// WAL replay throughput (point-in-time restore) as a ratio of the node's own
// ingest rate on the same machine (issue 12: ≥ 5×). One run:
// 1. seed a data dir, start a real node with WAL archiving into a local dir
//    (wal.archive_dir, archive_timeout 1s), hot base backup;
// 2. ingest: concurrent clients POST 16-object batches back to back for N
//    seconds (closed loop: the node's maximum rate with archiving on);
// 3. wait until the archiver has archived every batch, stop the node;
// 4. `backup restore BASE --wal --json`: the replay phase alone (fetch,
//    decode, check, walApply, the final flush) is timed by the restore itself
//    (wal.replay_seconds);
// 5. the same again, --runs times (default 3): medians, and the ratio of each run.
// Rates are compared in the same units: batches/s and MB/s of WAL (the
// archived segments' bytes).
// A second, load-independent figure: CPU seconds per batch of the node while
// ingesting (every thread, from /proc) vs the restore's replay_cpu_seconds.
// Standalone: node dist/bench/wal-replay.js [--seconds 10] [--clients 4] [--runs 3]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import { BenchResult, CLI, loadAverage, machineInfo, round } from './lib';
import { startNode } from './node-bench';

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });

function guts(args: string[], env: NodeJS.ProcessEnv): string {
  return execFileSync(CLI[0], [CLI[1], ...args], { env: { ...process.env, ...env }, maxBuffer: 64 << 20 }).toString();
}

function post(url: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, agent: keepAlive }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function body(tag: string, n: number): string {
  return JSON.stringify({
    objects: Array.from({ length: 16 }, (_, i) => ({ type: 'blob', data: Buffer.from(`${tag} ${n} ${i} ${'x'.repeat(200 + ((n * 31 + i) % 2000))}`).toString('base64') })),
  });
}

/** Closed loop: `clients` writers back to back for `seconds`; batches acknowledged. */
async function ingest(url: string, seconds: number, clients: number): Promise<{ batches: number; seconds: number }> {
  const bodies = Array.from({ length: 4000 }, (_, n) => body('ingest', n));
  let n = 0;
  const t0 = process.hrtime.bigint();
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < end) {
        const i = n++;
        await post(`${url}/api/repos/bench/wal/objects`, i < bodies.length ? bodies[i] : body('ingest', i));
      }
    }),
  );
  return { batches: n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function walStatus(env: NodeJS.ProcessEnv, dataDir: string): { pending_segments?: number } {
  try {
    return JSON.parse(guts(['wal', 'status', '--data-dir', dataDir, '--json'], env)) as { pending_segments?: number };
  } catch {
    return {};
  }
}

/** CPU seconds (user + system, every thread) a process has used so far, from /proc. */
function processCpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

interface RunResult {
  http_batches: number;
  ingest_seconds: number;
  ingest_cpu_seconds: number;
  restore_seconds: number;
  verify_batches: number;
  wal: { segments: number; wal_bytes: number; batches: number; replay_seconds: number; apply_seconds: number; flush_seconds: number; replay_cpu_seconds: number; finish_seconds: number };
}

/** One run: a fresh node ingests, its archive is replayed onto its base. */
async function walReplayOnce(work: string, opts: { seconds: number; clients: number; seedSize: string }): Promise<RunResult> {
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const dataDir = path.join(work, 'wal-data');
  const archive = path.join(work, 'wal-archive');
  fs.mkdirSync(archive);
  const config = path.join(work, 'wal-config.yaml');
  fs.writeFileSync(config, `wal:\n  archive_dir: ${archive}\n  archive_timeout: 1s\n`);
  const env = { GUTS_CONFIG: config };
  guts(['dev', 'seed', '--data-dir', dataDir, '--size', opts.seedSize, '--repos', '20', '--seed', '7'], env);
  const base = path.join(work, 'wal-base.tar.zst');
  const { child, url } = await startNode(dataDir, env);
  let ing: { batches: number; seconds: number };
  let ingestCpu: number;
  try {
    guts(['backup', 'create', '--hot', '--data-dir', dataDir, '--output', base, '--force'], env);
    const cpu0 = processCpuSeconds(child.pid!);
    ing = await ingest(url, opts.seconds, opts.clients);
    ingestCpu = processCpuSeconds(child.pid!) - cpu0;
    // every acknowledged batch archived before the node stops
    for (let i = 0; i < 600; i++) {
      await new Promise((r) => setTimeout(r, 500));
      if (walStatus(env, dataDir).pending_segments === 0 && i >= 4) break;
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
  const target = path.join(work, 'wal-restored');
  const t0 = Date.now();
  const r = JSON.parse(guts(['backup', 'restore', base, '--wal', '--target', target, '--json'], env)) as { wal: RunResult['wal'] };
  const restoreSeconds = (Date.now() - t0) / 1000;
  const verify = JSON.parse(guts(['wal', 'verify', '--from', base, '--json'], env)) as { batches: number };
  fs.rmSync(work, { recursive: true, force: true });
  return { http_batches: ing.batches, ingest_seconds: ing.seconds, ingest_cpu_seconds: ingestCpu, restore_seconds: restoreSeconds, verify_batches: verify.batches, wal: r.wal };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export async function walReplayBench(work: string, opts: { seconds: number; clients: number; seedSize: string; runs?: number }): Promise<BenchResult> {
  const before = loadAverage();
  const runs: RunResult[] = [];
  for (let i = 0; i < (opts.runs ?? 3); i++) runs.push(await walReplayOnce(path.join(work, `wal-run-${i}`), opts));
  const per = runs.map((x) => {
    const w = x.wal;
    // ingest batches counted by the archive itself (HTTP batches plus the few the node writes on its own)
    const ingestBatchesPerS = w.batches / x.ingest_seconds;
    const replayBatchesPerS = w.batches / w.replay_seconds;
    return {
      ingestBatchesPerS,
      ingestMBps: w.wal_bytes / x.ingest_seconds / 1e6,
      replayBatchesPerS,
      replayMBps: w.wal_bytes / w.replay_seconds / 1e6,
      ratio: replayBatchesPerS / ingestBatchesPerS,
      // CPU seconds per batch: the node's (every thread) while ingesting vs the restore's while replaying
      cpuRatio: x.ingest_cpu_seconds / w.replay_cpu_seconds,
    };
  });
  const m = (f: (p: (typeof per)[number]) => number) => median(per.map(f));
  const mw = (f: (x: RunResult) => number) => median(runs.map(f));
  const ratio = m((p) => p.ratio);
  return {
    name: 'wal-replay',
    baseline: 'node ingest over HTTP with archiving on',
    ratio_desc: 'replay rate / the node ingest rate in the same run (batches/s; MB/s of archived WAL is the same ratio), median of the runs',
    runs: runs.length,
    data: {
      seconds: opts.seconds,
      clients: opts.clients,
      seed: opts.seedSize,
      http_batches: runs.map((x) => x.http_batches),
      archived_batches: runs.map((x) => x.wal.batches),
      verify_batches: runs.map((x) => x.verify_batches),
      segments: runs.map((x) => x.wal.segments),
      wal_bytes: runs.map((x) => x.wal.wal_bytes),
      ratios: per.map((p) => round(p.ratio, 2)),
      cpu_ratios: per.map((p) => round(p.cpuRatio, 2)),
    },
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [
      ['batches/s', 'batches_per_s'],
      ['WAL MB/s', 'wal_mb_per_s'],
      ['seconds', 'seconds'],
      ['CPU s', 'cpu_seconds'],
    ],
    subjects: [
      {
        label: 'PITR replay (fetch, decode, check, walApply, flush)',
        command: 'guts-node backup restore BASE --wal',
        ratio_vs_baseline: round(ratio, 2),
        extra: { batches_per_s: round(m((p) => p.replayBatchesPerS), 0), wal_mb_per_s: round(m((p) => p.replayMBps), 2), seconds: round(mw((x) => x.wal.replay_seconds), 2), cpu_seconds: round(mw((x) => x.wal.replay_cpu_seconds), 2) },
      },
      {
        label: `node ingest (${opts.clients} clients, 16-object batches, back to back)`,
        command: 'POST /api/repos/:owner/:name/objects',
        ratio_vs_baseline: 1,
        extra: { batches_per_s: round(m((p) => p.ingestBatchesPerS), 0), wal_mb_per_s: round(m((p) => p.ingestMBps), 2), seconds: round(mw((x) => x.ingest_seconds), 2), cpu_seconds: round(mw((x) => x.ingest_cpu_seconds), 2) },
      },
    ],
    notes: [
      `replay ${round(ratio, 1)}× the node's ingest rate (target ≥ 5×), median of ${runs.length} runs: ${per.map((p) => round(p.ratio, 2)).join(', ')}`,
      `CPU per batch (load-independent): the node used ${round(m((p) => p.cpuRatio), 1)}× the CPU time to ingest a batch that the restore used to replay it (runs: ${per.map((p) => round(p.cpuRatio, 2)).join(', ')})`,
      `replay ${round(mw((x) => x.wal.replay_seconds), 2)} s (median), of which the final flush ${round(mw((x) => x.wal.flush_seconds), 2)} s; walApply ran ${round(mw((x) => x.wal.apply_seconds), 2)} s on a worker; then ${round(mw((x) => x.wal.finish_seconds), 2)} s to close the store and start the new timeline; whole restore ${round(mw((x) => x.restore_seconds), 1)} s`,
      `${runs.map((x) => `${x.wal.batches} batches in ${x.wal.segments} segments, ${round(x.wal.wal_bytes / 1e6, 1)} MB (wal verify: ${x.verify_batches})`).join('; ')}`,
    ],
    date: new Date().toISOString(),
  } as BenchResult;
}

async function main(): Promise<void> {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const work = fs.mkdtempSync(path.join(process.env.GUTS_BENCH_DIR || os.tmpdir(), 'guts-wal-bench-'));
  try {
    const r = await walReplayBench(work, { seconds: arg('--seconds', 10), clients: arg('--clients', 4), seedSize: '16MiB', runs: arg('--runs', 3) });
    const { printTable, saveResult } = await import('./lib');
    printTable(r);
    process.stdout.write(`  -> ${saveResult(r)}\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) void main();
