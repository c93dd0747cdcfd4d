// backup list / prune (src/backup/list.ts, src/backup/prune.ts) and backup run
// (src/backup/run.ts): thin commander wrappers.
import { Command } from 'commander';

import { GutsConfig } from '../config';
import { listBackups } from '../backup/list';
import { policyFrom, pruneBackups } from '../backup/prune';
import { runBackup } from '../backup/run';
import { isoSeconds } from '../backup';
import { GutsError } from '../errors';
import { openLocation } from '../location';
import { formatBytes } from '../progress';
import { context, intOption, printJson, run } from './context';
import { LOCK_WAIT_FLAG, LOCK_WAIT_HELP, lockWaitOption, repoList, repoPrune, repoUsage } from './backup-repo';

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
    .argument('[location]', 'directory or s3://bucket/prefix (default: backup.repo if set, else backup.to, else backup.dir)')
    .option('--repo <location>', 'list the snapshots of a backup repository instead (--json: one object, docs/JSON.md; default when no location is given: backup.repo)')
    .option('--json', 'print a JSON array')
    .action(
      run(async (arg: string | undefined, opts: { json?: boolean; repo?: string }, cmd: Command) => {
        if (opts.repo && arg) throw repoUsage('list', 'give a location or --repo, not both');
        const cfg = context(cmd).loaded.config;
        // as `backup run`: backup.repo unless the command line names an archive location
        const repo = opts.repo || (arg ? '' : cfg.backup.repo);
        if (repo) return repoList(cmd, repo, opts);
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
                `wal ${(e.wal_position?.segment != null ? `${e.wal_position.timeline}/${e.wal_position.segment}` : '-').padStart(8)}  sidecar ${e.sidecar ? 'yes' : 'NO '}  manifest ${e.manifest ? 'yes' : 'no '}  ${e.key}\n`,
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
      .argument('[location]', 'directory or s3://bucket/prefix (default: backup.repo if set, else backup.to, else backup.dir)'),
  )
    .option('--dry-run', 'print what would be removed, remove nothing')
    .option('--repo <location>', 'prune the snapshots of a backup repository instead, then sweep objects no kept snapshot references (under an exclusive repository lock; default when no location and no --archive-dir is given: backup.repo)')
    .option('--archive-dir <dir|url>', 'WAL archive whose segments older than every kept backup are removed (default: wal.archive_dir)')
    .option('--json', 'print one JSON object: kept (with reasons), removed, wal')
    .option(LOCK_WAIT_FLAG, LOCK_WAIT_HELP, lockWaitOption)
    .addHelpText(
      'after',
      `
Rules apply to full/hot backups and to consensus-only backups separately. With
no keep flag, backup.keep_* from config.yaml apply, else --keep-within
<backup.retention_days>d. Every kept backup is printed with the rules that keep it.
WAL segments in the WAL archive (wal.archive_dir or --archive-dir) numbered below
the oldest kept backup's WAL position are removed with them; nothing is removed
from the WAL archive when no kept backup has a WAL position.`,
    )
    .action(
      run(async (arg: string | undefined, opts: KeepFlags & { dryRun?: boolean; archiveDir?: string; json?: boolean; repo?: string; lockWait?: number }, cmd: Command) => {
        const cfg = context(cmd).loaded.config;
        const policy = policyFrom(opts, cfg.backup);
        if (opts.repo && (arg || opts.archiveDir)) throw repoUsage('prune', '--repo takes no location argument and no --archive-dir (repository prune never removes WAL segments)');
        // as `backup run`: backup.repo unless the command line names an archive location (or a WAL archive to prune with it)
        const repo = opts.repo || (arg || opts.archiveDir ? '' : cfg.backup.repo);
        if (opts.lockWait !== undefined && !repo) throw repoUsage('prune', '--lock-wait needs --repo or backup.repo (archive prune takes no repository lock)');
        if (repo) return repoPrune(cmd, repo, policy, opts);
        const location = openLocation(defaultLocation(cfg, arg), cfg);
        try {
          const r = await pruneBackups(location, policy, {
            dryRun: opts.dryRun,
            walArchive: opts.archiveDir ?? cfg.wal.archive_dir,
            config: cfg,
            log: opts.json ? undefined : (l) => process.stderr.write(l + '\n'),
          });
          if (opts.json) printJson(r);
          else process.stderr.write(`${r.dry_run ? 'would remove' : 'removed'} ${r.removed.length}, kept ${r.kept.length} at ${r.location}\n`);
        } finally {
          location.close();
        }
      }),
    );
}

interface RunFlags extends KeepFlags {
  outputDir?: string;
  to?: string;
  consensusOnly?: boolean;
  prune?: boolean;
  pushgateway?: string;
  textfile?: string;
  notifyUrl?: string;
  level?: number;
  threads?: number;
  cpuShare?: number;
  json?: boolean;
  repo?: string;
  lockWait?: number;
}

export function registerBackupRun(backup: Command): void {
  addKeepOptions(
    backup
      .command('run')
      .description('the whole scheduled job: hot backup if a node runs (else cold), verify, upload, prune, metrics, notify')
      .option('--output-dir <dir>', 'store the backup in this directory (default: backup.to, else backup.dir)')
      .option('--to <url>', 'store the backup at s3://bucket/prefix (streamed upload; default: backup.to)')
      .option('--consensus-only', 'only the consensus store (kind consensus-only; metrics labelled kind="consensus-only")')
      .option('--repo <location>', 'a snapshot into this backup repository (a directory or s3://bucket/prefix; only new SSTs are stored) instead of an archive; prune applies the keep rules to its snapshots (default: backup.repo)'),
  )
    .option('--no-prune', 'skip the prune step')
    .option('--pushgateway <url>', 'push metrics to this Prometheus Pushgateway (job guts-backup; default: backup.pushgateway)')
    .option('--textfile <path>', 'merge metrics into this node_exporter textfile, atomically (default: backup.textfile)')
    .option('--notify-url <url>', 'POST the JSON result here, on success and on failure (default: backup.notify_url)')
    .option('--level <n>', 'zstd level (default: backup.level)', intOption('--level', 1, 19))
    .option('--threads <n>', 'compression / verify threads (default: CPUs)', intOption('--threads', 1, 256))
    .option('--cpu-share <percent>', 'beside a running node, each archiver thread runs at most this share of the time (default 50)', intOption('--cpu-share', 5, 100))
    .option('--json', 'print the result (the notification body) as one JSON object on stdout')
    .option(LOCK_WAIT_FLAG, LOCK_WAIT_HELP, lockWaitOption)
    .addHelpText(
      'after',
      `
One log line per step on stderr ("[time] step: ..."). A failed step stops the
run: nothing is pruned after a failed backup or verify, the failure is pushed
(guts_backup_last_success 0) and notified, and the exit code is the step's: 1
invalid archive, 2 I/O / configuration, 3 locked, 130 interrupted. Failures to
push metrics or to notify are reported and never change the exit code.
Every flag has a backup.* key in config.yaml, so a systemd unit runs just
"guts-node --config /etc/guts/config.yaml backup run".

With --repo (or backup.repo) the backup is a snapshot into a backup repository
(docs/FORMAT.md "Backup repository"): create stores only new SSTs, verify reads
every object of the snapshot back, prune applies the same keep rules to the
repository's snapshots and sweeps objects none of the kept ones references (no
WAL segments are removed). A create meeting a running prune (and the reverse)
waits up to --lock-wait seconds, then exits 3 (GUTS_REPO_LOCKED). Metrics are
the same; guts_backup_size_bytes is the bytes the snapshot added. --output-dir
or --to on the command line make an archive run even when backup.repo is set.

Notification / --json: {"status":"success"|"failure","timestamp","file","size_bytes",
"checksum","kind","location","duration_seconds","failed_step","error","steps",
"prune","metrics"}; repository runs add "snapshot" (docs/OPERATIONS.md)`,
    )
    .action(
      run(async (opts: RunFlags, cmd: Command) => {
        const ctx = context(cmd);
        const cfg = ctx.loaded.config;
        if (opts.outputDir && opts.to) throw new GutsError('GUTS_INVALID_ARGUMENT', 'give --output-dir or --to, not both');
        if (opts.to && !/^s3:\/\//.test(opts.to)) throw new GutsError('GUTS_INVALID_ARGUMENT', `--to takes an s3://bucket/prefix URL, not ${opts.to} (use --output-dir for a directory)`);
        if (opts.repo && (opts.outputDir || opts.to)) throw repoUsage('run', 'give --repo or --output-dir / --to, not both');
        if (opts.repo && opts.consensusOnly) throw repoUsage('run', '--consensus-only needs an archive location (--output-dir / --to): repository snapshots hold db/ and consensus/');
        // a repository run: --repo, or backup.repo unless the command line names an archive location
        const repo = opts.repo || (opts.outputDir || opts.to ? '' : cfg.backup.repo);
        const where = repo || opts.to || opts.outputDir || cfg.backup.to || cfg.backup.dir;
        const policy = policyFrom(opts, cfg.backup);
        const location = openLocation(where, cfg);
        const ac = new AbortController();
        const onSignal = () => ac.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const { result, exitCode } = await runBackup({
            dataDir: ctx.dataDir,
            location,
            consensusOnly: opts.consensusOnly || cfg.backup.kind === 'consensus-only',
            policy,
            noPrune: opts.prune === false,
            walArchive: cfg.wal.archive_dir,
            config: cfg,
            pushgateway: opts.pushgateway ?? (cfg.backup.pushgateway || undefined),
            textfile: opts.textfile ?? (cfg.backup.textfile || undefined),
            notifyUrl: opts.notifyUrl ?? (cfg.backup.notify_url || undefined),
            level: opts.level ?? cfg.backup.level,
            threads: opts.threads,
            cpuShare: opts.cpuShare !== undefined ? opts.cpuShare / 100 : undefined,
            signal: ac.signal,
            log: (line) => process.stderr.write(`[${isoSeconds()}] ${line}\n`),
            repository: Boolean(repo),
            lockWait: opts.lockWait ?? cfg.backup.lock_wait,
          });
          if (opts.json) printJson(result);
          return exitCode;
        } finally {
          location.close();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}
