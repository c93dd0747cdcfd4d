import { Command } from 'commander';

import { runDemo } from '../demo';
import { run } from './context';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the whole story on a demo data dir: node, seed, hot backup, verify, restore, verify --full')
    .option('--dir <dir>', 'demo directory (removed at the end unless --keep)', './guts-demo')
    .option('--size <size>', 'seed size', '64MiB')
    .option('--keep', 'keep the demo directory')
    .action(
      run(async (opts: { dir: string; size: string; keep?: boolean }) => {
        await runDemo({ dir: opts.dir, size: opts.size, keep: Boolean(opts.keep), log: (l) => process.stdout.write(l + '\n') });
      }),
    );
}
