// WAL replay throughput (point-in-time restore) as a ratio of the node's own
// ingest rate on the same machine (issue 12: ≥ 5×). One run:
// 1. seed a data dir, start a real node with WAL archiving into a local dir
//    (wal.archive_dir, archive_timeout 1s), hot base backup;
// 2. ingest: concurrent clients POST 16-object batches back to back for N
//    seconds (closed loop: the node's maximum rate with archiving on);
// 3. wait until the archiver has archived every batch, stop the node;
// 4. `backup restore BASE --wal --json`: the replay phase alone (fetch,
//    decode, check, walApply) is timed by the restore itself (wal.replay_seconds).
// Rates are compared in the same units: batches/s and MB/s of WAL (the
// archived segments' bytes, and the uncompressed WriteBatch bytes).
// Standalone: node dist/bench/wal-replay.js [--seconds 10] [--clients 4]
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

export async function walReplayBench(work: string, opts: { seconds: number; clients: number; seedSize: string }): Promise<BenchResult> {
  const before = loadAverage();
  const dataDir = path.join(work, 'wal-data');
  const archive = path.join(work, 'wal-archive');
  const config = path.join(work, 'wal-config.yaml');
  fs.writeFileSync(config, `wal:\n  archive_dir: ${archive}\n  archive_timeout: 1s\n`);
  const env = { GUTS_CONFIG: config };
  guts(['dev', 'seed', '--data-dir', dataDir, '--size', opts.seedSize, '--repos', '20', '--seed', '7'], env);
  const base = path.join(work, 'wal-base.tar.zst');
  const { child, url } = await startNode(dataDir, env);
  let ing: { batches: number; seconds: number };
  try {
    guts(['backup', 'create', '--hot', '--data-dir', dataDir, '--output', base, '--force'], env);
    ing = await ingest(url, opts.seconds, opts.clients);
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
  fs.rmSync(target, { recursive: true, force: true });
  const t0 = Date.now();
  const r = JSON.parse(guts(['backup', 'restore', base, '--wal', '--target', target, '--json'], env)) as {
    elapsed_ms: number;
    wal: { segments: number; wal_bytes: number; batches: number; replay_seconds: number; apply_seconds: number; finish_seconds: number };
  };
  const restoreSeconds = (Date.now() - t0) / 1000;
  const verify = JSON.parse(guts(['wal', 'verify', '--from', base, '--json'], env)) as { batches: number };
  fs.rmSync(target, { recursive: true, force: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.rmSync(archive, { recursive: true, force: true });
  fs.rmSync(base, { force: true });

  const w = r.wal;
  // ingest batches counted by the archive itself (HTTP batches plus the few the node writes on its own)
  const ingestBatchesPerS = w.batches / ing.seconds;
  const ingestMBps = w.wal_bytes / ing.seconds / 1e6;
  const replayBatchesPerS = w.batches / w.replay_seconds;
  const replayMBps = w.wal_bytes / w.replay_seconds / 1e6;
  const ratio = replayBatchesPerS / ingestBatchesPerS;
  return {
    name: 'wal-replay',
    baseline: 'node ingest over HTTP with archiving on',
    ratio_desc: 'replay rate / the node ingest rate (batches/s; MB/s of archived WAL is the same ratio)',
    runs: 1,
    data: { seconds: opts.seconds, clients: opts.clients, seed: opts.seedSize, http_batches: ing.batches, archived_batches: w.batches, verify_batches: verify.batches, segments: w.segments, wal_bytes: w.wal_bytes },
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [
      ['batches/s', 'batches_per_s'],
      ['WAL MB/s', 'wal_mb_per_s'],
      ['seconds', 'seconds'],
    ],
    subjects: [
      {
        label: 'PITR replay (fetch, decode, check, walApply)',
        command: 'guts-node backup restore BASE --wal',
        ratio_vs_baseline: round(ratio, 2),
        extra: { batches_per_s: round(replayBatchesPerS, 0), wal_mb_per_s: round(replayMBps, 2), seconds: round(w.replay_seconds, 2) },
      },
      {
        label: `node ingest (${opts.clients} clients, 16-object batches, back to back)`,
        command: 'POST /api/repos/:owner/:name/objects',
        ratio_vs_baseline: 1,
        extra: { batches_per_s: round(ingestBatchesPerS, 0), wal_mb_per_s: round(ingestMBps, 2), seconds: round(ing.seconds, 2) },
      },
    ],
    notes: [
      `replay ${round(ratio, 1)}× the node's ingest rate (target ≥ 5×); the whole restore (base extraction + replay + swap) took ${round(restoreSeconds, 1)} s`,
      `replay ${round(w.replay_seconds, 2)} s, of which walApply ${round(w.apply_seconds, 2)} s; then ${round(w.finish_seconds, 2)} s to close the store and start the new timeline`,
      `${w.batches} batches in ${w.segments} segments, ${round(w.wal_bytes / 1e6, 1)} MB archived; wal verify counted ${verify.batches}`,
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
    const r = await walReplayBench(work, { seconds: arg('--seconds', 10), clients: arg('--clients', 4), seedSize: '16MiB' });
    const { printTable, saveResult } = await import('./lib');
    printTable(r);
    process.stdout.write(`  -> ${saveResult(r)}\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) void main();
