// guts-node wal verify [--from BACKUP]: prove the WAL archive is complete from a base to its end.
import { Command } from 'commander';

import { GutsError } from '../errors';
import { formatBytes } from '../progress';
import { context, intOption, printJson, run } from './context';

interface WalVerifyFlags {
  from?: string;
  timeline?: string;
  archiveDir?: string;
  prefetch?: number;
  json?: boolean;
}

export function registerWalVerify(wal: Command): void {
  wal
    .command('verify')
    .description('walk the WAL archive from a base backup (or the first segment of the latest timeline) to its end: every segment present, intact and chained')
    .option('--from <backup>', "start at this backup's WAL position (MANIFEST.json \"wal\"), following its latest descendant timeline")
    .option('--timeline <id>', 'with --from: the timeline to follow (default: latest)')
    .option('--archive-dir <dir>', 'archive location (default: wal.restore_command, else wal.archive_dir)')
    .option('--prefetch <n>', 'segments fetched ahead at once (default 4)', intOption('--prefetch', 1, 64))
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
Exit codes: 0 complete (prints segments, batches, sequence and time ranges),
1 a segment is missing (GUTS_WAL_GAP, naming it), damaged or does not chain
(GUTS_CORRUPT / GUTS_WAL_GAP), 2 usage or I/O error.`,
    )
    .action(
      run(async (opts: WalVerifyFlags, cmd: Command) => {
        const { verifyWalArchive } = require('../wal/verify-archive') as typeof import('../wal/verify-archive');
        let timeline: number | 'latest' = 'latest';
        if (opts.timeline !== undefined && opts.timeline !== 'latest') {
          timeline = Number(opts.timeline);
          if (!Number.isInteger(timeline) || timeline < 1) throw new GutsError('GUTS_INVALID_ARGUMENT', `--timeline ${opts.timeline}: expected a timeline id or latest`);
        }
        if (opts.timeline !== undefined && !opts.from) throw new GutsError('GUTS_INVALID_ARGUMENT', '--timeline needs --from');
        const r = await verifyWalArchive({ config: context(cmd).loaded.config, archiveDir: opts.archiveDir, from: opts.from, timeline, prefetch: opts.prefetch });
        if (opts.json) {
          printJson({ status: 'complete', ...r });
          return;
        }
        const lines = [
          `WAL archive: ${r.archive}`,
          `  From: ${r.from.backup ?? 'first archived segment'} (timeline ${r.from.timeline}, ${r.from.segment}, db sequence ${r.from.db_sequence}, consensus ${r.from.consensus_sequence})`,
          `  Timelines: ${r.timelines.join(' -> ')}`,
          `  Segments: ${r.segments} (${formatBytes(r.wal_bytes)}): ${r.first_segment ?? '-'} .. ${r.last_segment ?? '-'}, ends before ${r.end_of_archive}`,
          `  Batches: ${r.batches.toLocaleString('en-US')}${r.marks.length ? ` (restore points: ${r.marks.join(', ')})` : ''}`,
          `  db sequence: ${r.db_sequence ? `${r.db_sequence.first}..${r.db_sequence.last}` : '-'}; consensus: ${r.consensus_sequence ? `${r.consensus_sequence.first}..${r.consensus_sequence.last}` : '-'}`,
          `  Commit time: ${r.commit_time ? `${r.commit_time.first} .. ${r.commit_time.last}` : '-'}`,
          'Status: COMPLETE',
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
