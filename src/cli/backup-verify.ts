import { Command } from 'commander';

import { formatVerifyReport, verifyBackup } from '../backup-verify';
import { ExitCode } from '../errors';
import { ProgressBar } from '../progress';
import { intOption, printJson, run } from './context';
import { remoteSource } from './remote';
import { backupVerifyJson } from './json';
import { cancelOnSignals } from './signals';

export function registerBackupVerify(backup: Command): void {
  backup
    .command('verify')
    .description('check a backup archive: sidecar SHA-256, every byte decompressed, every file against MANIFEST.json')
    .argument('<file>', 'backup archive (.tar.zst, .tar.gz or .tar): a path or s3://bucket/key (streamed, with FILE.sha256 from the bucket)')
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
      run(async (file: string, opts: { deep?: boolean; json?: boolean; threads?: number }, cmd: Command) => {
        const bars: ProgressBar[] = [];
        const remote = await remoteSource(file, cmd);
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
