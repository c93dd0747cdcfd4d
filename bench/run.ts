// npm run bench        full suite (≥ 1 GiB of node data, ~2 GB of real files: 1.45 GB with the kernel tree)
// npm run bench:quick  small data, a few minutes: what CI runs after the tests
// --data=seed,real     which data sets (default both); --only=backup,verify,…
// --real-mb=N          the real-files corpus of N MB (default 300, 2000 with --full; over 1000 adds
//                      the kernel tree of Debian's linux-source-6.1 package when installed)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { realCorpus } from './corpus';
import { BenchResult, printTable, saveResult } from './lib';
import { checkpointBench, latencyBench } from './node-bench';
import { storeBench } from './store-bench';
import { walReplayBench } from './wal-replay';
import { repoBench } from './repo';
import { walLatencyBench, walRpoBench } from './wal-bench';
import { backupBench, BenchEnv, describeDataset, dirBytes, hashBench, restoreBench, seed, verifyBench } from './suites';

type Suite = [string, () => BenchResult | Promise<BenchResult>];

async function main(): Promise<void> {
  const full = process.argv.includes('--full');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  // Both data sets by default: the seeded one (compresses like random bytes) and
  // real files imported as git repositories (text-heavy, like a git host).
  const datasets = (process.argv.find((a) => a.startsWith('--data='))?.slice(7) ?? 'seed,real').split(',');
  const work = fs.mkdtempSync(path.join(process.env.GUTS_BENCH_DIR || os.tmpdir(), 'guts-bench-'));
  const runs = full ? 5 : 3;
  const threads = os.cpus().length;
  const plans: Array<{ label: string; env: () => BenchEnv }> = [];
  if (datasets.includes('seed')) {
    plans.push({
      label: 'seed',
      env: () => {
        const size = full ? '1GiB' : '512MiB';
        const dataDir = path.join(work, 'data');
        process.stdout.write(`# guts-store benchmarks (${full ? 'full' : 'quick'}): seeding ${size} into ${dataDir}\n`);
        const dataBytes = seed(dataDir, size);
        const dataset = describeDataset(dataDir, size, work);
        process.stdout.write(`# data set: ${JSON.stringify(dataset)}\n`);
        return { work, dataDir, dataBytes, dataset, runs, threads };
      },
    });
  }
  if (datasets.includes('real')) {
    plans.push({
      label: 'real',
      env: () => {
        // --real-mb=2000: the full bench's real-files corpus in a quick run (cached corpora: 300, 1000, 2000)
        const realMb = Number(process.argv.find((a) => a.startsWith('--real-mb='))?.slice(10));
        const budget = realMb > 0 ? realMb * 1e6 : full ? 2e9 : 300e6;
        process.stdout.write(`# real-files corpus (up to ${budget / 1e6} MB of this machine's files, as git repositories with history):\n`);
        const c = realCorpus(work, budget, (l) => process.stdout.write(l + '\n'));
        const label = `real files: ${c.files} files, ${Math.round(c.fileBytes / 1e6)} MB, ${c.commits} commits in ${c.repos.length} repositories`;
        const dataset = describeDataset(c.dataDir, label, work);
        process.stdout.write(`# data set: ${JSON.stringify(dataset)}\n`);
        return { work, dataDir: c.dataDir, dataBytes: dirBytes(c.dataDir), dataset, runs, threads, repos: c.repos };
      },
    });
  }
  let failed = 0;
  try {
    // suites that need the data set (the WAL suites build stores of their own)
    const onDataset = ['backup', 'verify', 'restore', 'rehash', 'checkpoint', 'latency', 'repo', 'store'];
    for (const plan of plans) {
      const walOnly = only !== undefined && !only.some((n) => onDataset.includes(n));
      if (walOnly && plan.label !== 'seed') continue;
      // built on first use: `--only=wal-replay` does not seed 512 MiB first
      let built: BenchEnv | undefined;
      const env = (): BenchEnv => (built ??= plan.env());
      const suites: Suite[] = [
        ['backup', () => backupBench(env())],
        ['verify', () => verifyBench(env())],
        ['restore', () => restoreBench(env())],
        ['rehash', () => hashBench(env())],
        // backup repository: incremental snapshots, rounds of 1% new objects, restic as a peer, restore (bench/repo.ts)
        ['repo', () => repoBench(env(), 10)],
        // SST format: LZ4/ZSTD by level vs snappy (issue 14): size, write throughput, verify --full
        ['store', () => storeBench(env())],
      ];
      // checkpoint and latency seed stores of their own sizes: run them once, with the seeded set
      if (plan.label === 'seed') {
        suites.push(['checkpoint', () => checkpointBench(env(), full ? ['1GiB', '4GiB'] : ['64MiB', '256MiB'])]);
        suites.push(['latency', () => latencyBench(env(), full ? 10 : 6, full ? 3 : 2)]);
        // WAL archiving: node latency with archiving on vs off, RPO after kill -9, replay vs ingest (their own stores)
        suites.push(['wal-latency', () => walLatencyBench(work, full ? '128MiB' : '32MiB', full ? 10 : 6, full ? 4 : 2)]);
        suites.push(['wal-rpo', () => walRpoBench(work, '16MiB', full ? 4 : 2, 12)]);
        suites.push(['wal-replay', () => walReplayBench(work, { seconds: full ? 20 : 10, clients: 4, seedSize: full ? '64MiB' : '16MiB' })]);
      }
      for (const [name, fn] of suites) {
        if (only && !only.includes(name)) continue;
        try {
          const r = await fn();
          if (plan.label !== 'seed') r.name += `-${plan.label}`;
          printTable(r);
          process.stdout.write(`  -> ${saveResult(r)}\n`);
        } catch (e) {
          failed++;
          process.stdout.write(`\n## ${name} (${plan.label}): FAILED: ${(e as Error).message.split('\n').slice(0, 3).join(' | ')}\n`);
        }
      }
      // the next data set starts from a clean work dir
      for (const f of fs.readdirSync(work)) fs.rmSync(path.join(work, f), { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

void main();
