// npm run bench        full suite (≥ 1 GiB of node data)
// npm run bench:quick  small data, a few minutes: what CI runs after the tests
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BenchResult, printTable, saveResult } from './lib';
import { checkpointBench, latencyBench } from './node-bench';
import { walReplayBench } from './wal-replay';
import { walLatencyBench, walRpoBench } from './wal-bench';
import { backupBench, BenchEnv, describeDataset, hashBench, restoreBench, seed, verifyBench } from './suites';

async function main(): Promise<void> {
  const full = process.argv.includes('--full');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  const work = fs.mkdtempSync(path.join(process.env.GUTS_BENCH_DIR || os.tmpdir(), 'guts-bench-'));
  const size = full ? '1GiB' : '512MiB';
  const dataDir = path.join(work, 'data');
  process.stdout.write(`# guts-store benchmarks (${full ? 'full' : 'quick'}): seeding ${size} into ${dataDir}\n`);
  const dataBytes = seed(dataDir, size);
  const dataset = describeDataset(dataDir, size, work);
  process.stdout.write(`# data set: ${JSON.stringify(dataset)}\n`);
  const env: BenchEnv = { work, dataDir, dataBytes, dataset, runs: full ? 5 : 3, threads: os.cpus().length };
  const suites: Array<[string, () => BenchResult | Promise<BenchResult>]> = [
    ['backup', () => backupBench(env)],
    ['verify', () => verifyBench(env)],
    ['restore', () => restoreBench(env)],
    ['rehash', () => hashBench(env)],
    ['checkpoint', () => checkpointBench(env, full ? ['1GiB', '4GiB'] : ['64MiB', '256MiB'])],
    ['latency', () => latencyBench(env, full ? 10 : 6, full ? 3 : 2)],
    ['wal-latency', () => walLatencyBench(work, full ? '128MiB' : '32MiB', full ? 10 : 6, full ? 4 : 2)],
    ['wal-rpo', () => walRpoBench(work, '16MiB', full ? 4 : 2, 12)],
    ['wal-replay', () => walReplayBench(work, { seconds: full ? 20 : 10, clients: 4, seedSize: full ? '64MiB' : '16MiB' })],
  ];
  let failed = 0;
  try {
    for (const [name, fn] of suites) {
      if (only && !only.includes(name)) continue;
      try {
        const r = await fn();
        printTable(r);
        process.stdout.write(`  -> ${saveResult(r)}\n`);
      } catch (e) {
        failed++;
        process.stdout.write(`\n## ${name}: FAILED: ${(e as Error).message.split('\n').slice(0, 3).join(' | ')}\n`);
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

void main();
