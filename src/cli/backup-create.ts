import { Command } from 'commander';
import * as os from 'node:os';

import { BackupKind, createBackup, DEFAULT_BACKGROUND_CPU_SHARE } from '../backup';
import { GutsError } from '../errors';
import { isRemote, splitUrl } from '../location';
import { formatBytes, groupDigits, ProgressBar } from '../progress';
import { context, intOption, printJson, run } from './context';
import { backupCreateJson } from './json';
import { LOCK_WAIT_FLAG, LOCK_WAIT_HELP, lockWaitOption, repoUsage } from './repo-flags';

interface CreateOpts {
  output?: string;
  repo?: string;
  hot?: boolean;
  consensusOnly?: boolean;
  includeKey?: boolean;
  includeConfig?: boolean;
  level?: number;
  threads?: number;
  force?: boolean;
  foreground?: boolean;
  cpuShare?: number;
  json?: boolean;
  lockWait?: number;
}

export function registerBackupCreate(backup: Command): void {
  backup
    .command('create')
    .description('archive a consistent RocksDB checkpoint of the data dir (tar + parallel zstd/gzip) with a .sha256 sidecar')
    .option('-o, --output <file>', 'archive path or s3://bucket/prefix/name (streamed to a multipart upload); the extension picks the format: .tar.zst (recommended), .tar.gz, .tar')
    .option('--repo <location>', 'instead of an archive: a snapshot into this backup repository (a directory or s3://bucket/prefix); SSTs already stored are not stored again (docs/FORMAT.md "Backup repository")')
    .option('--hot', 'hot backup while the node keeps running (kind "hot"), through its admin socket; with no node running, a direct checkpoint of the stopped store, labelled kind "full" (stderr says so)')
    .option('--consensus-only', 'only the consensus store (kind "consensus-only")')
    .option('--include-key', 'also store the node key (p2p.key_file) as keys/node.key, mode 0600')
    .option('--include-config', 'also store the config file as config/config.yaml, mode 0600')
    .option('--level <n>', 'compression level: zstd 1-19, gzip 1-9 (default: backup.level, 3); zstd picks parameters per chunk and stores chunks that do not compress in raw frames (docs/FORMAT.md)', intOption('--level', 1, 19))
    .option('--threads <n>', `compression threads (default: number of cores, here ${os.availableParallelism()})`, intOption('--threads', 1, 256))
    .option('--force', 'replace an existing output file that is not a guts-node archive (an existing archive is always replaced, once the new one is complete)')
    .option('--foreground', 'beside a running node, keep normal CPU and I/O priority and do not pace (faster backup, slower node writes)')
    .option(
      '--cpu-share <percent>',
      `beside a running node, each archiver thread runs at most this share of the time (default ${DEFAULT_BACKGROUND_CPU_SHARE * 100}; 100 = no pacing)`,
      intOption('--cpu-share', 5, 100),
    )
    .option('--json', 'print one JSON object on stdout (docs/JSON.md)')
    .option(LOCK_WAIT_FLAG, LOCK_WAIT_HELP, lockWaitOption)
    .addHelpText(
      'after',
      `
The archive is written to FILE.partial (mode 0600), fsynced and renamed; FILE.sha256
holds "<sha256>  <name>" for sha256sum -c. An existing guts-node archive FILE (and
its sidecar) stays until the new one is complete, then is replaced (rotation by
name); any other file under that name needs --force. With s3://bucket/prefix/NAME
the archive is streamed into a multipart upload (no local copy, bounded memory),
completed only once the whole archive was written; NAME.sha256 and
NAME.manifest.json are uploaded after it. Endpoint and credentials: AWS_*
environment, AWS_PROFILE, or backup.s3.* in config.yaml. On an error or
SIGINT/SIGTERM nothing is left behind (exit 130 when interrupted). The data dir's live files are never read:
a RocksDB checkpoint (hard links) is archived and removed afterwards. Beside a
running node (--hot), the archive is written at idle CPU and I/O priority and
paced (--cpu-share) so the node's requests keep their latency; such a backup
takes about twice as long as a cold one (--foreground: normal priority, no pacing).

Examples:
  guts-node backup create --output /backup/guts-$(date +%Y%m%d-%H%M%S).tar.zst
  guts-node backup create --hot --output /backup/guts-hot-$(date +%Y%m%d).tar.gz
  guts-node backup create --consensus-only --output /var/backups/guts/consensus-$(date +%H).tar.gz
  guts-node backup create --hot --repo s3://backups/guts-repo      # incremental: only new SSTs are stored`,
    )
    .action(
      run(async (opts: CreateOpts, cmd: Command) => {
        if (opts.repo && opts.output) throw repoUsage('create', 'give --output or --repo, not both');
        if (opts.lockWait !== undefined && !opts.repo) throw repoUsage('create', '--lock-wait needs --repo (an archive takes no repository lock)');
        // the repository code (and S3) only for --repo; the streamed upload only for a URL
        if (opts.repo) return (require('./backup-repo') as typeof import('./backup-repo')).repoCreate(cmd, opts.repo, opts);
        if (!opts.output) throw repoUsage('create', "required option '-o, --output <file>' not specified (or --repo <location>)");
        const output = opts.output;
        const ctx = context(cmd);
        const cfg = ctx.loaded.config;
        const kind: BackupKind = opts.consensusOnly ? 'consensus-only' : opts.hot ? 'hot' : 'full';
        if (opts.includeConfig && !ctx.loaded.exists) {
          throw new GutsError('GUTS_NOT_FOUND', `--include-config: there is no config file at ${ctx.loaded.path}`, ctx.loaded.path);
        }
        const ac = new AbortController();
        const onSignal = () => ac.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        let bar: ProgressBar | null = null;
        const remote = isRemote(output) ? splitUrl(output, cfg) : null;
        try {
          const common = {
            dataDir: ctx.dataDir,
            kind,
            keyFile: opts.includeKey ? cfg.p2p.key_file : undefined,
            configFile: opts.includeConfig ? ctx.loaded.path : undefined,
            // backup.level allows zstd's 1-19; gzip stops at 9 (an explicit --level is checked as given)
            level: opts.level ?? (/\.(tar\.gz|tgz)$/.test(output) ? Math.min(cfg.backup.level, 9) : cfg.backup.level),
            threads: opts.threads,
            force: opts.force,
            signal: ac.signal,
            log: (line: string) => process.stderr.write(`${line}\n`),
            backgroundWithNode: !opts.foreground,
            cpuShare: opts.cpuShare !== undefined ? opts.cpuShare / 100 : undefined,
            onTask: (task: Parameters<NonNullable<Parameters<typeof createBackup>[0]['onTask']>>[0]) => {
              bar = new ProgressBar('backup', () => task.progress());
            },
          };
          const r = remote
            ? await (require('../location/backup-stream') as typeof import('../location/backup-stream')).createBackupAt({ ...common, location: remote.location, key: remote.key })
            : await createBackup({ ...common, output });
          (bar as ProgressBar | null)?.stop();
          bar = null;
          if (opts.json) {
            printJson(backupCreateJson(r));
          } else {
            const objects = r.objects.commit + r.objects.tree + r.objects.blob + r.objects.tag;
            process.stderr.write(
              `Backup created: ${r.file} (${formatBytes(r.size_bytes)}, ${groupDigits(objects)} objects, ` +
                `${r.repositories} repositories, ${r.kind}, ${r.duration_s.toFixed(1)} s) ${r.checksum}` +
                `${r.replaced_existing ? '; replaced the previous file of that name' : ''}\n`,
            );
          }
        } finally {
          (bar as ProgressBar | null)?.stop();
          remote?.location.close();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}
