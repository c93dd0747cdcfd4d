import { Command } from 'commander';

import { formatObjects } from '../backup-verify';
import { escapeControls, GutsError } from '../errors';
import type { TaskHandle } from '../native';
import { formatBytes, groupDigits, ProgressBar } from '../progress';
import { restoreBackup, RestoreReport } from '../restore';
import type { PitrReport, RestoreTarget } from '../wal/pitr';
import { context, intOption, printJson, run } from './context';
import { remoteSource } from './remote';
import { restoreJson } from './json';
import { cancelOnSignals } from './signals';
import { repoUsage } from './repo-flags';
// Only --repo needs the repository code: loaded then, not on every restore
// (~25 ms of start-up: the repository, S3 and node-client modules).
const repoCli = (): typeof import('./backup-repo') => require('./backup-repo') as typeof import('./backup-repo');

interface RestoreFlags {
  target?: string;
  verify?: boolean;
  force?: boolean;
  forceAny?: boolean;
  keyTo?: string;
  configTo?: string;
  json?: boolean;
  threads?: number;
  wal?: boolean;
  until?: string;
  untilSeq?: number;
  untilMark?: string;
  timeline?: string;
  archiveDir?: string;
  prefetch?: number;
  repo?: string;
  snapshot?: string;
}

function untilTarget(opts: RestoreFlags): RestoreTarget {
  const given = [opts.until !== undefined, opts.untilSeq !== undefined, opts.untilMark !== undefined].filter(Boolean).length;
  if (given && !opts.wal) throw new GutsError('GUTS_INVALID_ARGUMENT', '--until, --until-seq and --until-mark need --wal');
  if (given > 1) throw new GutsError('GUTS_INVALID_ARGUMENT', 'give one of --until, --until-seq, --until-mark');
  if ((opts.timeline !== undefined || opts.archiveDir !== undefined || opts.prefetch !== undefined) && !opts.wal) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', '--timeline, --archive-dir and --prefetch need --wal');
  }
  if (opts.until !== undefined) return { time_ms: (require('../wal/pitr') as typeof import('../wal/pitr')).parseUntilTime(opts.until) };
  if (opts.untilSeq !== undefined) return { seq: opts.untilSeq };
  if (opts.untilMark !== undefined) {
    if (!opts.untilMark) throw new GutsError('GUTS_INVALID_ARGUMENT', '--until-mark needs a name');
    return { mark: opts.untilMark };
  }
  return null;
}

function timelineOption(v: string | undefined): number | 'latest' {
  if (v === undefined || v === 'latest') return 'latest';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new GutsError('GUTS_INVALID_ARGUMENT', `--timeline ${v}: expected a timeline id (1, 2, …) or latest`);
  return n;
}

export function registerBackupRestore(backup: Command): void {
  backup
    .command('restore')
    .description('restore a backup archive into the data dir (or --target), verified and atomic')
    .argument('[file]', 'backup archive (.tar.zst, .tar.gz or .tar): a path or s3://bucket/key (streamed, with FILE.sha256 from the bucket)')
    .option('--repo <location>', 'restore a snapshot of this backup repository instead of an archive (same staging, checks, swap and --wal)')
    .option('--snapshot <id>', 'with --repo: snapshot id, unique prefix, or latest (default)')
    .option('--target <dir>', 'data dir to restore into (default: storage.data_dir / --data-dir)')
    .option('--verify', 're-hash every git object of the staged store before putting it in place')
    .option('--force', 'replace a non-empty target that is a data dir or an earlier restore (the old data is removed once the new data is in place)')
    .option('--force-any', 'replace a non-empty target whatever it holds (--force refuses a directory that is not a data dir)')
    .option('--key-to <path>', 'write the archived node key here (mode 0600; never replaces a different key)')
    .option('--config-to <path>', 'write the archived config.yaml here (mode 0600; never replaces a different file)')
    .option('--threads <n>', 'decoder threads (default: CPUs)', intOption('--threads', 1, 64))
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .option('--wal', 'point-in-time restore: replay the archived WAL after the base (wal.restore_command, else wal.archive_dir) to the end of the archive or to --until…')
    .option('--until <time>', 'with --wal: stop after the last batch committed at or before TIME (ISO-8601, UTC when no zone; or Unix seconds)')
    .option('--until-seq <n>', 'with --wal: stop after the db batch holding sequence N', intOption('--until-seq', 1))
    .option('--until-mark <name>', 'with --wal: stop after the restore point NAME (guts-node wal mark)')
    .option('--timeline <id>', 'with --wal: the history to follow (default: latest)')
    .option('--archive-dir <dir>', 'with --wal: read the WAL archive from this directory instead of the configured commands / wal.archive_dir')
    .option('--prefetch <n>', 'with --wal: segments fetched ahead at once (default 4)', intOption('--prefetch', 1, 64))
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
holds nothing but data-dir entries (db/, consensus/, wal/, checkpoints/,
last-backup.json, node.pid, admin.sock, lost+found); any other directory
needs --force-any. The restored store is owner-only (dirs 0700, files 0600). Prints what was restored and the elapsed time (the RTO).

With --wal, the staged base is brought forward by the archived WAL: every
segment is checked (checksum, hash chain, sequence continuity) and replayed
in order up to the target; a missing or damaged segment before it, or an
archive that ends before it, stops the restore (exit 1, GUTS_WAL_GAP /
GUTS_CORRUPT / GUTS_WAL_TARGET) with the target untouched. The restored store
begins a new timeline (its history file is archived). Prints the sequence and
commit time reached (the real RPO).

Examples:
  guts-node backup restore /backup/guts-hot.tar.zst --wal
  guts-node backup restore /backup/guts-hot.tar.zst --wal --until 2026-01-31T11:59:00Z --target /tmp/guts-pitr`,
    )
    .action(
      run(async (fileArg: string | undefined, opts: RestoreFlags, cmd: Command) => {
        if (opts.repo && fileArg) throw repoUsage('restore', 'give an archive or --repo, not both');
        if (opts.snapshot && !opts.repo) throw repoUsage('restore', '--snapshot needs --repo');
        if (!opts.repo && !fileArg) throw repoUsage('restore', "missing required argument 'file' (or --repo <location>)");
        const repo = opts.repo ? await repoCli().repoRestoreOptions(cmd, opts.repo, opts.snapshot, opts.threads) : null;
        const file = repo ? repo.file : fileArg!;
        const target = opts.target ?? context(cmd).dataDir;
        const bars: ProgressBar[] = [];
        const remote = repo ? null : await remoteSource(file, cmd);
        const signals = cancelOnSignals();
        // a WAL replay stops between segments (native tasks are cancelled through `signals`)
        const abort = new AbortController();
        const onSignal = () => abort.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const until = untilTarget(opts);
          const timeline = timelineOption(opts.timeline);
          const base = {
            file,
            source: remote?.source,
            extract: repo?.extract,
            target,
            verify: opts.verify,
            force: opts.force,
            forceAny: opts.forceAny,
            keyTo: opts.keyTo,
            configTo: opts.configTo,
            threads: opts.threads,
            log: (line: string) => process.stderr.write(`${escapeControls(line)}\n`),
            onTask: (h: TaskHandle<unknown>, label: string) => {
              signals.track(h);
              bars.push(new ProgressBar(label, () => h.progress()));
            },
          };
          const r: RestoreReport & Partial<PitrReport> = opts.wal
            ? await (require('../wal/pitr') as typeof import('../wal/pitr')).restorePointInTime({
                ...base,
                config: context(cmd).loaded.config,
                archiveDir: opts.archiveDir,
                until,
                timeline,
                prefetch: opts.prefetch,
                signal: abort.signal,
              })
            : await restoreBackup(base);
          bars.forEach((b) => b.stop());
          if (opts.json) {
            printJson(restoreJson(r));
            return;
          }
          const lines = [
            `Restored ${r.file} (${r.kind}, created ${r.created}) into ${r.target}`,
            `  Files: ${groupDigits(r.files)} (${formatBytes(r.bytes)})`,
            `  Objects: ${formatObjects(r.objects)}`,
            `  Repositories: ${groupDigits(r.repositories)}`,
          ];
          if (r.wal) {
            const w = r.wal;
            lines.push(
              `  WAL: ${groupDigits(w.batches)} batches from ${w.segments} segments (${formatBytes(w.wal_bytes)}, timelines ${w.timelines_followed.join(' -> ')}) in ${w.replay_seconds.toFixed(1)} s`,
              `  Reached: db sequence ${w.reached.db_sequence}, consensus ${w.reached.consensus_sequence}, last commit ${w.reached.commit_time ?? '(none after the base)'} (the real RPO)`,
              `  New timeline: ${w.new_timeline.timeline} (${w.new_timeline.history}${w.new_timeline.history_archived ? ' archived' : ' NOT archived: left in wal/pending/'})`,
            );
          }
          if (r.verified) lines.push('  Object check: passed');
          if (r.key_to) lines.push(`  Node key: ${r.key_to.path} (${r.key_to.action})`);
          if (r.config_to) lines.push(`  Config: ${r.config_to.path} (${r.config_to.action})`);
          lines.push(`  Elapsed: ${(r.elapsed_ms / 1000).toFixed(1)} s (measured RTO)`);
          process.stderr.write(lines.map(escapeControls).join('\n') + '\n');
        } finally {
          bars.forEach((b) => b.stop());
          signals.dispose();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          remote?.location.close();
          repo?.close();
        }
      }),
    );
}
