// guts-node import / export / dev seed: real git data in and out of the store.
import { Command } from 'commander';

import { exportGitRepo, importGitRepo } from '../git';
import { formatBytes, ProgressBar } from '../progress';
import { defaultRepoCount, parseSize, seedData } from '../seed';
import { openSink } from '../sink';
import { checkRepoName, GutsStore } from '../store';
import { formatCount, formatTypeCounts } from '../verify';
import { checkedOption, context, intOption, printJson, run } from './context';
import { exportJson, importJson, seedJson } from './json';

function say(line: string): void {
  process.stderr.write(line + '\n');
}

function repoOption(v: string): string {
  try {
    return checkRepoName(v);
  } catch (e) {
    throw new (require('commander').InvalidArgumentError)((e as Error).message);
  }
}

export function registerData(program: Command): void {
  program
    .command('import')
    .description('import every object and ref of a git repository (bare or not) into the store')
    .argument('<path>', 'path to a git repository')
    .requiredOption('--repo <owner/name>', 'repository name in the store', repoOption)
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .addHelpText('after', '\nWrites through the running node when one serves the data dir, else opens the data dir itself.\n\nExample:\n  guts-node import ~/src/project --repo alice/project')
    .action(
      run(async (repoPath: string, opts: { repo: string; json?: boolean }, cmd: Command) => {
        const { dataDir } = context(cmd);
        const opened = await openSink(dataDir);
        say(`import: ${opened.description}`);
        try {
          let done = 0;
          const bar = new ProgressBar('import', () => ({ done, total: 0, files: 0 }));
          const r = await importGitRepo(opened.sink, repoPath, opts.repo, (_objects, bytes) => (done = bytes)).finally(() => bar.stop());
          if (opts.json) printJson(importJson(r, repoPath, opened.via, dataDir));
          else {
            process.stdout.write(
              `imported ${formatCount(r.objects)} objects (${formatTypeCounts(r.counts)}; ${formatCount(r.added)} new), ` +
                `${formatCount(r.refs)} refs, HEAD ${r.head ?? '(none)'} into ${r.repo}: ${formatBytes(r.bytes)} in ${r.durationS.toFixed(1)} s\n`,
            );
          }
        } finally {
          await opened.close();
        }
      }),
    );

  program
    .command('export')
    .description('write a repository of the store as a bare git repository (git fsck --full clean)')
    .requiredOption('--repo <owner/name>', 'repository name in the store', repoOption)
    .argument('<dir>', 'target directory (must not exist, or be empty)')
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .addHelpText('after', '\nOpens the data dir read-only; a store held by a running node is refused (exit 3).\n\nExample:\n  guts-node export --repo alice/project /tmp/project.git')
    .action(
      run(async (dir: string, opts: { repo: string; json?: boolean }, cmd: Command) => {
        const { dataDir } = context(cmd);
        const store = await GutsStore.open(dataDir, { readOnly: true, create: false });
        say(`export: opened data dir ${store.dataDir} read-only`);
        try {
          const r = await exportGitRepo(store, opts.repo, dir);
          if (opts.json) printJson(exportJson(r));
          else
            process.stdout.write(
              `exported ${r.repo}: ${formatCount(r.objects)} objects, ${formatCount(r.refs)} refs, HEAD ${r.head ?? '(default)'} -> ${r.dir} (pack ${formatBytes(r.packBytes)}) in ${r.durationS.toFixed(1)} s\n`,
            );
        } finally {
          await store.close();
        }
      }),
    );

  const dev = program.command('dev').description('developer tools: generated data for tests, the demo and benchmarks');
  dev
    .command('seed')
    .description('write deterministic, realistic node data: git repositories (text and binary blobs, trees, commit chains, tags, refs) and consensus blocks')
    .option('--size <size>', 'bytes of git objects to generate: 64MiB, 1GiB, 500MB, ...', checkedOption(parseSize), '64MiB')
    .option('--repos <n>', 'number of repositories (default: one per 8 MiB, 1 to 100)', intOption('--repos', 1, 100000))
    .option('--seed <s>', 'seed: the same seed, size and repos give identical ids', '1')
    .option('--blocks <n>', 'consensus blocks (default: 10 per repository, at least 100)', intOption('--blocks', 0, 10_000_000))
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .addHelpText('after', '\nExample:\n  guts-node --data-dir /tmp/guts dev seed --size 1GiB --repos 100 --seed 42')
    .action(
      run(async (opts: { size: string; repos?: number; seed: string; blocks?: number; json?: boolean }, cmd: Command) => {
        const { dataDir } = context(cmd);
        const size = parseSize(opts.size);
        const opened = await openSink(dataDir);
        say(`dev seed: ${opened.description}`);
        try {
          let done = 0;
          const bar = new ProgressBar('seed', () => ({ done, total: size, files: 0 }));
          const r = await seedData(opened.sink, {
            size,
            repos: opts.repos ?? defaultRepoCount(size),
            seed: opts.seed,
            blocks: opts.blocks,
            onProgress: (bytes) => (done = bytes),
          }).finally(() => bar.stop());
          if (opts.json) printJson(seedJson(r, opened.via, dataDir));
          else
            process.stdout.write(
              `seeded ${formatBytes(r.bytes)}: ${formatCount(r.objects)} objects (${formatTypeCounts(r.counts)}), ` +
                `${formatCount(r.repositories)} repositories, ${formatCount(r.commits)} commits, ${formatCount(r.blocks)} blocks ` +
                `(finalized ${formatCount(r.finalizedHeight)}) in ${r.durationS.toFixed(1)} s: ${r.mbPerS.toFixed(0)} MB/s\n`,
            );
        } finally {
          await opened.close();
        }
      }),
    );
}
