// guts-node wal status | wal mark: the node side of continuous WAL archiving.
import { Command } from 'commander';

import { connectNode, requireNode } from '../node-client';
import { formatBytes } from '../progress';
import type { WalStatus } from '../wal/archiver';
import { offlineWalStatus } from '../wal/status';
import { context, printJson, run } from './context';

export function registerWalNode(wal: Command): void {
  wal
    .command('status')
    .description('timeline, last archived segment, pending segments/bytes, failures and the last error (through the running node, else from DATA_DIR/wal/state.json)')
    .option('--json', 'print JSON')
    .action(
      run(async (opts: { json?: boolean }, cmd: Command) => {
        const ctx = context(cmd);
        const client = await connectNode(ctx.dataDir);
        let status: WalStatus;
        try {
          status = client ? await client.walStatus() : offlineWalStatus(ctx.dataDir);
        } finally {
          client?.close();
        }
        if (opts.json) printJson({ running: Boolean(client), data_dir: ctx.dataDir, ...status });
        else process.stdout.write(formatWalStatus(status, Boolean(client)));
      }),
    );
  wal
    .command('mark')
    .description('create a named restore point in the running node (like pg_create_restore_point) and archive it promptly')
    .argument('<name>', 'restore point name (A-Z a-z 0-9 . _ : @ + -, at most 200)')
    .option('--json', 'print JSON')
    .action(
      run(async (name: string, opts: { json?: boolean }, cmd: Command) => {
        const ctx = context(cmd);
        const client = await requireNode(ctx.dataDir);
        try {
          const r = await client.walMark(name);
          if (opts.json) printJson({ name: r.name, seq: r.seq, time: r.time, segment: r.segment });
          else process.stdout.write(`restore point ${r.name}: db seq ${r.seq}, ${r.time}, in segment ${r.segment}\n`);
        } finally {
          client.close();
        }
      }),
    );
}

function formatWalStatus(s: WalStatus, running: boolean): string {
  const lines = [
    `Archiving: ${s.archiving ? 'on' : running ? 'off' : 'node not running (from wal/state.json)'}`,
    `Timeline: ${s.timeline}${s.needs_base_backup ? ' (no base backup covers it yet: run guts-node backup create)' : ''}`,
    `Last archived: ${s.last_archived ? `${s.last_archived.name} at ${s.last_archived.archived_at}` + (s.last_archived.last_commit_time ? ` (commits up to ${s.last_archived.last_commit_time})` : '') : 'none'}`,
    `Pending: ${s.pending_segments} segments, ${formatBytes(s.pending_bytes)}${s.max_pending_bytes !== null ? ` (max ${formatBytes(s.max_pending_bytes)})` : ''}${s.backlog ? ' — WRITES REFUSED (GUTS_WAL_BACKLOG)' : ''}`,
    `Archived: ${s.archived_segments_total} segments; failures: ${s.archive_failures_total}; timeline switches: ${s.timeline_switches_total}`,
    `Last error: ${s.last_error ? `${s.last_error.at} ${s.last_error.message}` : 'none'}`,
  ];
  if (s.open_segment) lines.push(`Open segment: ${s.open_segment.segment}, ${s.open_segment.records} batches, ${formatBytes(s.open_segment.bytes)}`);
  if (s.archiving) lines.push(`Archive lag: ${s.archive_lag_seconds.toFixed(1)} s`);
  return lines.join('\n') + '\n';
}
