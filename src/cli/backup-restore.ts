import { Command } from 'commander';

import { formatObjects } from '../backup-verify';
import { formatBytes, ProgressBar } from '../progress';
import { restoreBackup } from '../restore';
import { context, intOption, printJson, run } from './context';
import { restoreJson } from './json';
import { cancelOnSignals } from './signals';

interface RestoreFlags {
  target?: string;
  verify?: boolean;
  force?: boolean;
  keyTo?: string;
  configTo?: string;
  json?: boolean;
  threads?: number;
}

export function registerBackupRestore(backup: Command): void {
  backup
    .command('restore')
    .description('restore a backup archive into the data dir (or --target), verified and atomic')
    .argument('<file>', 'backup archive (.tar.zst, .tar.gz or .tar)')
    .option('--target <dir>', 'data dir to restore into (default: storage.data_dir / --data-dir)')
    .option('--verify', 're-hash every git object of the staged store before putting it in place')
    .option('--force', 'replace a non-empty target (the old data is removed once the new data is in place)')
    .option('--key-to <path>', 'write the archived node key here (mode 0600; never replaces a different key)')
    .option('--config-to <path>', 'write the archived config.yaml here (mode 0600; never replaces a different file)')
    .option('--threads <n>', 'decoder threads (default: CPUs)', intOption('--threads', 1, 64))
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .addHelpText(
      'after',
      `
The archive is extracted into <parent>/.<target>.restore-<pid>.staging, every
file checked against the archive's index and manifest and fsynced, then moved
into place with one atomic rename. Interrupted at any point (even kill -9), the
target is left as it was; the next run removes the leftover staging dir.
Refuses a target held by a running node (exit 3) and a non-empty target
without --force. Prints what was restored and the elapsed time (the RTO).`,
    )
    .action(
      run(async (file: string, opts: RestoreFlags, cmd: Command) => {
        const target = opts.target ?? context(cmd).dataDir;
        const bars: ProgressBar[] = [];
        const signals = cancelOnSignals();
        try {
          const r = await restoreBackup({
            file,
            target,
            verify: opts.verify,
            force: opts.force,
            keyTo: opts.keyTo,
            configTo: opts.configTo,
            threads: opts.threads,
            log: (line) => process.stderr.write(`${line}\n`),
            onTask: (h, label) => {
              signals.track(h);
              bars.push(new ProgressBar(label, () => h.progress()));
            },
          });
          bars.forEach((b) => b.stop());
          if (opts.json) {
            printJson(restoreJson(r));
            return;
          }
          const lines = [
            `Restored ${r.file} (${r.kind}, created ${r.created}) into ${r.target}`,
            `  Files: ${r.files.toLocaleString('en-US')} (${formatBytes(r.bytes)})`,
            `  Objects: ${formatObjects(r.objects)}`,
            `  Repositories: ${r.repositories.toLocaleString('en-US')}`,
          ];
          if (r.verified) lines.push('  Object check: passed');
          if (r.key_to) lines.push(`  Node key: ${r.key_to.path} (${r.key_to.action})`);
          if (r.config_to) lines.push(`  Config: ${r.config_to.path} (${r.config_to.action})`);
          lines.push(`  Elapsed: ${(r.elapsed_ms / 1000).toFixed(1)} s (measured RTO)`);
          process.stderr.write(lines.join('\n') + '\n');
        } finally {
          bars.forEach((b) => b.stop());
          signals.dispose();
        }
      }),
    );
}
