// guts-node serve | status | maintenance enter|exit
import { Command } from 'commander';

import { parseDuration } from '../config';
import { DEFAULT_MAINTENANCE_MS } from '../daemon/maintenance';
import { Logger } from '../daemon/log';
import { GutsNode } from '../daemon/node';
import { collectStatus, StatusReport } from '../daemon/status';
import { ExitCode, GutsError } from '../errors';
import { connectNode, requireNode } from '../node-client';
import { formatBytes } from '../progress';
import { context, printJson, run } from './context';

export function registerNode(program: Command): void {
  program
    .command('serve')
    .description('run the node: open the stores, serve the HTTP API (api.addr) and the admin socket <data_dir>/admin.sock')
    .option('--listen <host:port>', 'override api.addr (port 0 = any free port; the bound address is printed on stdout)')
    .addHelpText(
      'after',
      `
Prints "listening http://HOST:PORT" on stdout once the port is bound; logs go to
stderr (logging.format, logging.level). SIGTERM / SIGINT stop it gracefully:
in-flight requests finish, the stores are flushed and closed, node.pid and
admin.sock are removed, exit 0. A second serve on the same data dir fails with
GUTS_LOCKED (exit 3).`,
    )
    .action(
      run(async (opts: { listen?: string }, cmd: Command) => {
        const ctx = context(cmd);
        const cfg = ctx.loaded.config;
        const log = new Logger(cfg.logging.level, cfg.logging.format);
        const node = new GutsNode({ dataDir: ctx.dataDir, config: cfg, listen: opts.listen, log });
        let signals = 0;
        const onSignal = (sig: NodeJS.Signals) => {
          if (++signals > 1) {
            log.warn('second signal, exiting without a clean shutdown', { signal: sig });
            process.exit(ExitCode.INTERRUPTED);
          }
          void node.stop(`received ${sig}`);
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        try {
          await node.start((url) => process.stdout.write(`listening ${url}\n`));
        } catch (e) {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          throw e;
        }
        // The servers keep the event loop alive until a signal stops the node.
        await node.whenStopped();
        // Anything still holding the loop open after a clean stop is a bug: do not hang.
        setTimeout(() => process.exit(process.exitCode ?? 0), 3000).unref();
        return 0;
      }),
    );

  program
    .command('status')
    .description('running or not, data dir sizes, object counts, maintenance state, last backup')
    .option('--json', 'print JSON')
    .option('--wait-sync', 'wait until a node serves this data dir and is ready (this storage node has no peer sync of its own)')
    .option('--timeout <duration>', 'with --wait-sync: give up after this long (exit 2, GUTS_TIMEOUT)', '10m')
    .action(
      run(async (opts: { json?: boolean; waitSync?: boolean; timeout: string }, cmd: Command) => {
        const ctx = context(cmd);
        if (opts.waitSync) await waitForNode(ctx.dataDir, parseDuration(opts.timeout));
        const r = await collectStatus(ctx.dataDir);
        for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
        if (opts.json) printJson(r);
        else process.stdout.write(formatStatus(r));
      }),
    );

  const maint = program
    .command('maintenance')
    .description('pause writes for a file-system snapshot (LVM/ZFS) of the data dir, and resume them');
  maint
    .command('enter')
    .description('pause writes, flush memtables and sync the WAL; the node leaves maintenance by itself after --timeout')
    .option('--timeout <duration>', 'leave maintenance automatically after this long (e.g. 90s, 10m, 1h)', '10m')
    .option('--json', 'print JSON')
    .action(
      run(async (opts: { timeout: string; json?: boolean }, cmd: Command) => {
        const ctx = context(cmd);
        const timeoutMs = opts.timeout ? parseDuration(opts.timeout) : DEFAULT_MAINTENANCE_MS;
        const c = await requireNode(ctx.dataDir);
        try {
          const r = await c.maintenanceEnter(timeoutMs);
          if (opts.json) printJson({ maintenance: true, pid: c.node.pid, ...r });
          else {
            process.stdout.write(
              `maintenance mode ${r.alreadyActive ? 'extended' : 'on'} (node pid ${c.node.pid}): writes paused, stores flushed and synced` +
                `${r.flushMs !== undefined ? ` in ${r.flushMs} ms` : ''}; ends automatically at ${r.until} — run "guts-node maintenance exit" after the snapshot\n`,
            );
          }
        } finally {
          c.close();
        }
      }),
    );
  maint
    .command('exit')
    .description('resume writes')
    .option('--json', 'print JSON')
    .action(
      run(async (opts: { json?: boolean }, cmd: Command) => {
        const ctx = context(cmd);
        const c = await requireNode(ctx.dataDir);
        try {
          const r = await c.maintenanceExit();
          if (opts.json) printJson({ maintenance: false, pid: c.node.pid, ...r });
          else process.stdout.write(r.wasActive ? `maintenance mode off (node pid ${c.node.pid}): writes resumed\n` : `node (pid ${c.node.pid}) was not in maintenance mode; nothing to do\n`);
        } finally {
          c.close();
        }
      }),
    );
}

function n(v: number): string {
  return v.toLocaleString('en-US');
}

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  if (r.running) {
    lines.push(`Node: running (pid ${r.pid ?? '?'}${r.apiAddr ? `, api http://${r.apiAddr}` : ''}${r.version ? `, version ${r.version}` : ''})`);
  } else lines.push('Node: not running');
  lines.push(`Data dir: ${r.dataDir}`);
  lines.push(`Sizes: db ${formatBytes(r.sizes.db)}, consensus ${formatBytes(r.sizes.consensus)}, checkpoints ${formatBytes(r.sizes.checkpoints)} (total ${formatBytes(r.sizes.total)})`);
  if (r.counts) {
    const c = r.counts;
    lines.push(`Objects: ${n(c.blob)} blobs, ${n(c.tree)} trees, ${n(c.commit)} commits, ${n(c.tag)} tags${r.source === 'store' ? ' (read from the stopped store)' : ''}`);
    lines.push(`Repositories: ${n(c.repositories)}`);
  } else lines.push('Objects: unknown');
  if (r.consensus) lines.push(`Consensus: ${n(r.consensus.blocks)} blocks, finalized height ${n(r.consensus.finalizedHeight)}`);
  if (r.maintenance) lines.push(`Maintenance: ${r.maintenance.active ? `ON (writes paused until ${r.maintenance.until})` : 'off'}`);
  if (r.checkpoints?.length) lines.push(`Checkpoints held: ${r.checkpoints.map((c) => `${c.id} (expires ${c.expires})`).join(', ')}`);
  const describe = (b: NonNullable<StatusReport['lastBackup']>) => {
    const ageH = (Date.now() - Date.parse(b.created)) / 3_600_000;
    const age = ageH < 1 ? `${Math.round(ageH * 60)} min ago` : ageH < 48 ? `${ageH.toFixed(1)} h ago` : `${(ageH / 24).toFixed(1)} days ago`;
    return `${b.created} (${age}), ${b.kind}, ${formatBytes(b.size_bytes)}, ${b.file}`;
  };
  lines.push(`Last backup: ${r.lastBackup ? describe(r.lastBackup) : 'none recorded (full or hot)'}`);
  if (r.lastConsensusBackup) lines.push(`Last consensus-only backup: ${describe(r.lastConsensusBackup)}`);
  for (const note of r.notes) lines.push(`Note: ${note}`);
  return lines.join('\n') + '\n';
}

/** Polls the admin socket until a node answers status, or the timeout passes. */
async function waitForNode(dataDir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = await connectNode(dataDir);
    if (client) {
      try {
        await client.status();
        return;
      } finally {
        client.close();
      }
    }
    if (Date.now() >= deadline) throw new GutsError('GUTS_TIMEOUT', `no node became ready for ${dataDir} within ${timeoutMs / 1000}s`, dataDir);
    await new Promise((r) => setTimeout(r, 500));
  }
}
