// guts-node compact [--data-dir D] [--json]: the store rewritten in its current
// format (issue 14), through the running node or offline (src/compact.ts).
import { Command } from 'commander';

import { compactDataDir, formatCompression } from '../compact';
import { formatBytes, ProgressBar } from '../progress';
import { context, printJson, run } from './context';
import { compactJson } from './json';

export function registerCompact(program: Command): void {
  program
    .command('compact')
    .description('rewrite every SST file of the store in its current format (LZ4 above, ZSTD at the bottommost level): converts a store written before it, reclaims space')
    .option('-d, --data-dir <dir>', 'data directory (default: the global --data-dir, then storage.data_dir)')
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .addHelpText(
      'after',
      `
Goes through the running node when one serves the data dir (writes go on
meanwhile), else opens the store itself (exit 3 if another process holds it).
Each RocksDB compaction is atomic: an interrupted compact (SIGINT, exit 130)
leaves a whole store, part of it not yet rewritten; run it again.
Needs free space for the largest column family's new files beside the old.

Exit codes: 0 done, 2 usage or I/O error (no store: GUTS_NOT_FOUND), 3 locked, 130 interrupted.

Example:
  guts-node compact --data-dir /var/lib/guts`,
    )
    .action(
      run(async (opts: { dataDir?: string; json?: boolean }, cmd: Command) => {
        const { dataDir } = context(cmd, opts.dataDir);
        const abort = new AbortController();
        const onSignal = () => abort.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          const r = await compactDataDir(dataDir, {
            signal: abort.signal,
            onProgress: opts.json
              ? undefined
              : (poll) => {
                  const bar = new ProgressBar('compact', poll);
                  return () => bar.stop();
                },
          });
          if (opts.json) printJson(compactJson(r));
          else {
            const ratio = r.before.bytes ? ` (${((r.after.bytes / r.before.bytes) * 100).toFixed(0)}%)` : '';
            process.stdout.write(
              `compacted ${r.dataDir} ${r.via === 'node' ? 'through the running node' : 'offline'}: ` +
                `${formatBytes(r.before.bytes)} in ${r.before.files} SST files (${formatCompression(r.before, formatBytes)}) -> ` +
                `${formatBytes(r.after.bytes)}${ratio} in ${r.after.files} (${formatCompression(r.after, formatBytes)}) in ${r.durationS.toFixed(1)} s\n`,
            );
          }
        } finally {
          process.removeListener('SIGINT', onSignal);
          process.removeListener('SIGTERM', onSignal);
        }
      }),
    );
}
