import { Command } from 'commander';

import { formatObjects } from '../backup-verify';
import { escapeControls } from '../errors';
import { formatBytes, ProgressBar } from '../progress';
import { restoreBackup } from '../restore';
import { context, intOption, printJson, run } from './context';
import { cancelOnSignals } from './signals';

interface RestoreFlags {
  target?: string;
  verify?: boolean;
  force?: boolean;
  forceAny?: boolean;
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
    .option('--force', 'replace a non-empty target that is a data dir or an earlier restore (the old data is removed once the new data is in place)')
    .option('--force-any', 'replace a non-empty target whatever it holds (--force refuses a directory that is not a data dir)')
    .option('--key-to <path>', 'write the archived node key here (mode 0600; never replaces a different key)')
    .option('--config-to <path>', 'write the archived config.yaml here (mode 0600; never replaces a different file)')
    .option('--threads <n>', 'decoder threads (default: CPUs)', intOption('--threads', 1, 64))
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
The archive is extracted into <parent>/.<target>.restore-<pid>.staging, every
file checked against the archive's index and manifest and fsynced, then moved
into place with one atomic rename. Interrupted at any point (even kill -9), the
target is left as it was; the next run removes the leftover staging dir.
Refuses (exit 3, before anything is created or removed) a target that is,
lies inside or contains a live store: a data dir a running node serves, or a
RocksDB store any process holds open; symlinks and ".." are resolved first.
A non-empty target needs --force, and --force replaces only a directory that
holds nothing but data-dir entries (db/, consensus/, checkpoints/,
last-backup.json, node.pid, admin.sock, lost+found); any other directory
needs --force-any. The restored store is owner-only (dirs 0700, files 0600). Prints what was restored and the elapsed time (the RTO).`,
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
            forceAny: opts.forceAny,
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
            printJson(r);
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
          process.stderr.write(lines.map(escapeControls).join('\n') + '\n');
        } finally {
          bars.forEach((b) => b.stop());
          signals.dispose();
        }
      }),
    );
}
