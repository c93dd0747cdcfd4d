// `--repo LOCATION` of backup create / list / verify / restore / prune, and
// `backup export`: thin commander glue over src/backup/repo-*.ts.
import { Command } from 'commander';

import { createRepoSnapshot } from '../backup/repo-create';
import { pruneRepo } from '../backup/repo-prune';
import { exportSnapshot, listRepo, repoRestoreSource, verifyRepo } from '../backup/repo-read';
import { KeepPolicy } from '../backup/prune';
import { ExitCode, GutsError } from '../errors';
import { Location, openLocation } from '../location';
import { formatBytes } from '../progress';
import { context, intOption, printJson, run } from './context';
import { repoUsage } from './repo-flags';

// In their own small module, so that `backup create` to a file and `backup restore`
// from one do not load the repository code (and S3) to define their flags.
export { LOCK_WAIT_FLAG, LOCK_WAIT_HELP, lockWaitOption, repoUsage } from './repo-flags';

function openRepo(cmd: Command, url: string): Location {
  return openLocation(url, context(cmd).loaded.config);
}

async function withSignals<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export async function repoCreate(cmd: Command, repo: string, opts: { hot?: boolean; consensusOnly?: boolean; level?: number; threads?: number; foreground?: boolean; cpuShare?: number; json?: boolean; includeKey?: boolean; includeConfig?: boolean; lockWait?: number }): Promise<void> {
  if (opts.consensusOnly || opts.includeKey || opts.includeConfig) throw repoUsage('create', '--repo snapshots hold db/ and consensus/ only: --consensus-only, --include-key and --include-config need --output');
  const ctx = context(cmd);
  const loc = openRepo(cmd, repo);
  try {
    const r = await withSignals((signal) =>
      createRepoSnapshot({
        dataDir: ctx.dataDir,
        location: loc,
        kind: opts.hot ? 'hot' : 'full',
        level: opts.level ?? ctx.loaded.config.backup.level,
        parallel: opts.threads,
        backgroundWithNode: !opts.foreground,
        cpuShare: opts.cpuShare !== undefined ? opts.cpuShare / 100 : undefined,
        signal,
        log: (line) => process.stderr.write(`${line}\n`),
        lockWait: opts.lockWait ?? ctx.loaded.config.backup.lock_wait,
      }),
    );
    if (opts.json) printJson(r);
    else
      process.stderr.write(
        `Snapshot ${r.snapshot} in ${r.repo} (${r.kind}, ${r.files} files, ${formatBytes(r.total_bytes)}): ` +
          `${r.reused_files} SSTs already stored (${formatBytes(r.reused_bytes)}), ${r.added_objects} objects added (${formatBytes(r.added_bytes)}), ${r.duration_seconds.toFixed(1)} s\n`,
      );
  } finally {
    loc.close();
  }
}

export async function repoList(cmd: Command, repo: string, opts: { json?: boolean }): Promise<void> {
  const loc = openRepo(cmd, repo);
  try {
    const r = await listRepo(loc);
    if (opts.json) {
      printJson(r);
      return;
    }
    process.stdout.write(`Snapshots in ${r.repo}: ${r.snapshots.length} (${r.repository_objects} objects, ${formatBytes(r.repository_bytes)})\n`);
    for (const s of r.snapshots) {
      const objects = (s.objects.commit + s.objects.tree + s.objects.blob + s.objects.tag).toLocaleString('en-US');
      process.stdout.write(
        `${s.id}  ${s.created}  ${s.kind.padEnd(5)} ${formatBytes(s.total_bytes).padStart(9)}  added ${formatBytes(s.added_bytes).padStart(9)}  objects ${objects.padStart(9)}  repos ${String(s.repositories).padStart(4)}  ` +
          `wal ${(s.wal_position ? `${s.wal_position.timeline}/${s.wal_position.segment}` : '-').padStart(8)}\n`,
      );
    }
  } finally {
    loc.close();
  }
}

export async function repoVerify(cmd: Command, repo: string, opts: { snapshot?: string; deep?: boolean; json?: boolean; threads?: number }): Promise<number> {
  const loc = openRepo(cmd, repo);
  try {
    const r = await withSignals((signal) => verifyRepo(loc, { snapshot: opts.snapshot, deep: opts.deep, parallel: opts.threads, signal }));
    if (opts.json) printJson(r);
    else {
      const lines = [`Repository: ${r.repo}`, `  Snapshots checked: ${r.snapshots.length}`, `  Objects read: ${r.objects_checked} (${formatBytes(r.bytes_checked)})`];
      for (const s of r.snapshots) lines.push(`  ${s.id}  ${s.status}${s.objects_check ? `  deep: ${s.objects_check.objects} objects, ${s.objects_check.repositories} repositories` : ''}`);
      lines.push(`Status: ${r.status}`);
      for (const p of r.problems) lines.push(`  ${p.code} ${p.object}: ${p.message}; snapshots depending on it: ${p.snapshots.join(', ')}`);
      process.stdout.write(lines.join('\n') + '\n');
    }
    return r.status === 'VALID' ? ExitCode.OK : ExitCode.INVALID;
  } finally {
    loc.close();
  }
}

/** What restoreBackup needs to restore a snapshot: a name for reports and the extract step. */
export async function repoRestoreOptions(cmd: Command, repo: string, snapshot: string | undefined, threads?: number): Promise<{ file: string; extract: Awaited<ReturnType<typeof repoRestoreSource>>['extract']; close: () => void }> {
  const loc = openRepo(cmd, repo);
  try {
    const s = await repoRestoreSource(loc, snapshot, { parallel: threads });
    return { file: s.name, extract: s.extract, close: () => loc.close() };
  } catch (e) {
    loc.close();
    throw e;
  }
}

export async function repoPrune(cmd: Command, repo: string, policy: KeepPolicy, opts: { dryRun?: boolean; json?: boolean; lockWait?: number }): Promise<void> {
  const loc = openRepo(cmd, repo);
  try {
    const r = await withSignals((signal) =>
      pruneRepo(loc, policy, {
        dryRun: opts.dryRun,
        log: opts.json ? undefined : (l) => process.stderr.write(l + '\n'),
        lockWait: opts.lockWait ?? context(cmd).loaded.config.backup.lock_wait,
        onLockWait: (l) => process.stderr.write(l + '\n'),
        signal,
      }),
    );
    if (opts.json) printJson(r);
    else process.stderr.write(`${r.dry_run ? 'would remove' : 'removed'} ${r.removed.length} snapshots and ${r.swept_objects} objects (${formatBytes(r.swept_bytes)}), kept ${r.kept.length} at ${r.repo}\n`);
  } finally {
    loc.close();
  }
}

export function registerBackupExport(backup: Command): void {
  backup
    .command('export')
    .description('write a repository snapshot as a normal single-file archive (.tar.zst/.tar.gz/.tar with .sha256 sidecar)')
    .requiredOption('--repo <location>', 'backup repository: a directory or s3://bucket/prefix')
    .requiredOption('--snapshot <id>', 'snapshot id (or a unique prefix, or latest)')
    .requiredOption('-o, --output <file>', 'archive to write; the extension picks the format')
    .option('--level <n>', 'compression level (default 3)', intOption('--level', 1, 19))
    .option('--threads <n>', 'compression threads (default: CPUs)', intOption('--threads', 1, 256))
    .option('--force', 'replace an existing output file')
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .addHelpText(
      'after',
      `
The snapshot's files are unpacked (each checked against the snapshot) into a
private temp dir beside the output, archived exactly as backup create --output
does (GUTS-INDEX, MANIFEST.json, FILE.sha256), and removed. The archive is
read by backup verify / restore and by stock tar + zstd. Exit codes: 0, 1 a
repository object is damaged (GUTS_REPO_CORRUPT), 2 usage or I/O error.`,
    )
    .action(
      run(async (opts: { repo: string; snapshot: string; output: string; level?: number; threads?: number; force?: boolean; json?: boolean }, cmd: Command) => {
        const loc = openRepo(cmd, opts.repo);
        try {
          const r = await withSignals((signal) => exportSnapshot(loc, opts.snapshot, opts.output, { level: opts.level, threads: opts.threads, force: opts.force, signal }));
          if (opts.json) printJson(r);
          else process.stderr.write(`Exported snapshot ${r.snapshot} of ${r.repo} to ${r.file} (${formatBytes(r.size_bytes)}, ${r.files} files) sha256:${r.sha256}\n`);
        } finally {
          loc.close();
        }
      }),
    );
}
