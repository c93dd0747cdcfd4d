import { Command } from 'commander';

import { formatVerifyReport, verifyBackup } from '../backup-verify';
import { ExitCode } from '../errors';
import { ProgressBar } from '../progress';
import { intOption, printJson, run } from './context';
import { backupVerifyJson } from './json';
import { cancelOnSignals } from './signals';

// The backup repository code (--repo) and the s3:// plumbing load only when used.
const repo = () => require('./backup-repo') as typeof import('./backup-repo');
const repoUsage = (name: string, message: string) => repo().repoUsage(name, message);

export function registerBackupVerify(backup: Command): void {
  backup
    .command('verify')
    .description('check a backup archive: sidecar SHA-256, every byte decompressed, every file against MANIFEST.json')
    .argument('[file]', 'backup archive (.tar.zst, .tar.gz or .tar): a path or s3://bucket/key (streamed, with FILE.sha256 from the bucket)')
    .option('--repo <location>', 'verify a backup repository instead: every object the snapshots reference read once and checked; a damaged object names every snapshot that depends on it')
    .option('--snapshot <id>', 'with --repo: only this snapshot (id, unique prefix or latest)')
    .option('--deep', 'also extract to a temp dir and re-hash every git object; counts must equal the manifest')
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .option('--threads <n>', 'decoder threads (default: CPUs)', intOption('--threads', 1, 64))
    .addHelpText(
      'after',
      `
Prints the backup's summary and "Status: VALID", or "Status: INVALID" followed
by one line per problem naming the file and the reason.
Exit codes: 0 valid, 1 invalid, 2 usage or I/O error (e.g. the file is missing).`,
    )
    .action(
      run(async (file: string | undefined, opts: { deep?: boolean; json?: boolean; threads?: number; repo?: string; snapshot?: string }, cmd: Command) => {
        if (opts.repo && file) throw repoUsage('verify', 'give an archive or --repo, not both');
        if (opts.snapshot && !opts.repo) throw repoUsage('verify', '--snapshot needs --repo');
        if (opts.repo) return repo().repoVerify(cmd, opts.repo, opts);
        if (!file) throw repoUsage('verify', "missing required argument 'file' (or --repo <location>)");
        const bars: ProgressBar[] = [];
        const remote = await (require('./remote') as typeof import('./remote')).remoteSource(file, cmd);
        const signals = cancelOnSignals();
        try {
          const report = await verifyBackup({
            file,
            source: remote?.source,
            deep: opts.deep,
            threads: opts.threads,
            onTask: (h, label) => {
              signals.track(h);
              bars.push(new ProgressBar(label, () => h.progress()));
            },
          });
          bars.forEach((b) => b.stop());
          if (opts.json) printJson(backupVerifyJson(report));
          else process.stdout.write(formatVerifyReport(report));
          return report.status === 'VALID' ? ExitCode.OK : ExitCode.INVALID;
        } finally {
          bars.forEach((b) => b.stop());
          signals.dispose();
          remote?.location.close();
        }
      }),
    );
}
