// guts-node verify --data-dir DIR [--full] [--list-affected] [--json] [--threads N]
import { Command } from 'commander';

import { ExitCode } from '../errors';
import { ProgressBar } from '../progress';
import { formatCount, formatSummary, verifyDataDir, VerifyReport } from '../verify';
import { context, intOption, printJson, run } from './context';

interface VerifyCliOptions {
  dataDir?: string;
  full?: boolean;
  listAffected?: boolean;
  json?: boolean;
  threads?: number;
}

/** The --list-affected block: never an empty list that reads as "none" while something is wrong. */
export function affectedBlock(r: VerifyReport): string {
  const n = formatCount(r.affected.length);
  let head = `Affected repositories (${n}):`;
  if (r.affectedUnknown) head = `Affected repositories (${n}, cannot tell which: every repository that may be affected):`;
  else if (!r.affected.length && !r.ok) head = 'Affected repositories (0): no repository owns the damaged objects or refs';
  return [head, ...r.affected.map((repo) => `  ${repo}`)].join('\n') + '\n';
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check a stopped node\'s data dir (or an extracted backup): SST block checksums and metadata; --full re-hashes every git object')
    .option('-d, --data-dir <dir>', 'data directory to check (default: the global --data-dir, then storage.data_dir)')
    .option('--full', 're-hash every object, check type bytes, recount by type, check every ref and the repository count')
    .option('--list-affected', 'print the repositories affected by problems (implies --full)')
    .option('--json', 'print one JSON result object')
    .option('--threads <n>', 'worker threads (default: all cores)', intOption('--threads', 1, 64))
    .addHelpText(
      'after',
      `
Problems are printed one per line, starting with CORRUPT (bad object hash,
type byte or block checksum), MISMATCH (stored counts differ from the data)
or ERROR (a ref to a missing object, unreadable data).
A store held by a running process is refused (exit 3).

Exit codes: 0 clean, 1 problems found, 2 usage or I/O error, 3 locked.

Example:
  guts-node verify --data-dir /tmp/guts-test --full`,
    )
    .action(
      run(async (opts: VerifyCliOptions, cmd: Command) => {
        const { dataDir } = context(cmd, opts.dataDir);
        const full = Boolean(opts.full || opts.listAffected);
        const abort = new AbortController();
        const onSignal = () => abort.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          const report = await verifyDataDir(dataDir, {
            full,
            threads: opts.threads,
            listAffected: opts.listAffected,
            signal: abort.signal,
            onProgress: opts.json
              ? undefined
              : (poll) => {
                  const bar = new ProgressBar('verify', poll);
                  return () => bar.stop();
                },
          });
          for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
          if (opts.json) {
            printJson(report);
          } else {
            for (const line of report.problems) process.stdout.write(line + '\n');
            if (opts.listAffected) process.stdout.write(affectedBlock(report));
            if (report.ok) process.stdout.write(formatSummary(report) + '\n');
            else process.stdout.write(`FAILED: ${formatCount(report.problems.length)} problem(s) in ${report.dataDir}\n`);
            if (!full && report.ok) process.stderr.write('(quick check; add --full to re-hash every object)\n');
          }
          return report.ok ? ExitCode.OK : ExitCode.INVALID;
        } finally {
          process.removeListener('SIGINT', onSignal);
          process.removeListener('SIGTERM', onSignal);
        }
      }),
    );
}
