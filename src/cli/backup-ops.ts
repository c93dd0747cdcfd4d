// backup list / prune (src/backup/list.ts, src/backup/prune.ts) and backup run
// (src/backup/run.ts): thin commander wrappers.
import { Command } from 'commander';

import { GutsConfig } from '../config';
import { listBackups } from '../backup/list';
import { policyFrom, pruneBackups } from '../backup/prune';
import { openLocation } from '../location';
import { formatBytes } from '../progress';
import { context, intOption, printJson, run } from './context';

/** LOCATION argument, else backup.to, else backup.dir. */
export function defaultLocation(cfg: GutsConfig, arg?: string): string {
  return arg || cfg.backup.to || cfg.backup.dir;
}

export interface KeepFlags {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepWithin?: string;
}

export function addKeepOptions(cmd: Command): Command {
  return cmd
    .option('--keep-last <n>', 'keep the N newest backups', intOption('--keep-last', 1))
    .option('--keep-daily <n>', 'keep the newest backup of each of the last N days that have one', intOption('--keep-daily', 1))
    .option('--keep-weekly <n>', 'keep the newest backup of each of the last N ISO weeks that have one', intOption('--keep-weekly', 1))
    .option('--keep-within <duration>', 'keep every backup created within this time of the newest one (e.g. 7d, 36h, 2w)');
}

export function registerBackupOps(backup: Command): void {
  backup
    .command('list')
    .description('every backup at a location: kind, created, size, objects, repositories, WAL position, sidecar/manifest present')
    .argument('[location]', 'directory or s3://bucket/prefix (default: backup.to, else backup.dir)')
    .option('--json', 'print a JSON array')
    .action(
      run(async (arg: string | undefined, opts: { json?: boolean }, cmd: Command) => {
        const cfg = context(cmd).loaded.config;
        const location = openLocation(defaultLocation(cfg, arg), cfg);
        try {
          const entries = await listBackups(location);
          if (opts.json) {
            printJson(entries);
            return;
          }
          process.stdout.write(`Backups at ${location.url}: ${entries.length}\n`);
          for (const e of entries) {
            const objects = e.objects ? (e.objects.commit + e.objects.tree + e.objects.blob + e.objects.tag).toLocaleString('en-US') : '-';
            process.stdout.write(
              `${e.created}  ${e.kind.padEnd(14)} ${formatBytes(e.size_bytes).padStart(9)}  objects ${objects.padStart(9)}  repos ${String(e.repositories ?? '-').padStart(4)}  ` +
                `wal ${String(e.wal_position ?? '-').padStart(8)}  sidecar ${e.sidecar ? 'yes' : 'NO '}  manifest ${e.manifest ? 'yes' : 'no '}  ${e.key}\n`,
            );
          }
        } finally {
          location.close();
        }
      }),
    );

  addKeepOptions(
    backup
      .command('prune')
      .description('remove backups no keep rule needs (restic-style); the newest valid backup is always kept; sidecars go with their archives')
      .argument('[location]', 'directory or s3://bucket/prefix (default: backup.to, else backup.dir)'),
  )
    .option('--dry-run', 'print what would be removed, remove nothing')
    .option('--json', 'print one JSON object: kept (with reasons), removed, wal')
    .addHelpText(
      'after',
      `
Rules apply to full/hot backups and to consensus-only backups separately. With
no keep flag, backup.keep_* from config.yaml apply, else --keep-within
<backup.retention_days>d. Every kept backup is printed with the rules that keep it.`,
    )
    .action(
      run(async (arg: string | undefined, opts: KeepFlags & { dryRun?: boolean; json?: boolean }, cmd: Command) => {
        const cfg = context(cmd).loaded.config;
        const policy = policyFrom(opts, cfg.backup);
        const location = openLocation(defaultLocation(cfg, arg), cfg);
        try {
          const r = await pruneBackups(location, policy, { dryRun: opts.dryRun, log: opts.json ? undefined : (l) => process.stderr.write(l + '\n') });
          if (opts.json) printJson(r);
          else process.stderr.write(`${r.dry_run ? 'would remove' : 'removed'} ${r.removed.length}, kept ${r.kept.length} at ${r.location}; WAL: ${r.wal.note || `${r.wal.removed.length} segments removed`}\n`);
        } finally {
          location.close();
        }
      }),
    );
}
