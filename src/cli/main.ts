// guts-node: a thin commander layer over the library API (src/*.ts).
import { Command } from 'commander';

import { VERSION } from '../version';
import { reportError } from './context';
import { installUsageErrors, jsonRequested, UsageError } from './usage';

// Each group of commands lives in its own module with its library code; only
// the group the command line names is loaded (all of them for help or an
// unknown command), so that `backup verify` does not pay for the daemon, the
// seed generator or git import (~40 ms of every CLI call).
// A group may also load only the subcommand named next (`sub`, when given).
type Register = (program: Command, sub?: string) => void;
const GROUPS: Array<[string[], () => Register]> = [
  [['backup'], () => (require('./backup') as typeof import('./backup')).registerBackup],
  [['verify'], () => (require('./verify') as typeof import('./verify')).registerVerify],
  [['serve', 'status', 'maintenance'], () => (require('./node') as typeof import('./node')).registerNode],
  [['config', 'keygen'], () => (require('./config') as typeof import('./config')).registerConfig],
  [['import', 'export', 'dev'], () => (require('./data') as typeof import('./data')).registerData],
  [['demo'], () => (require('./demo') as typeof import('./demo')).registerDemo],
  [['wal'], () => (require('./wal') as typeof import('./wal')).registerWal],
  [['compact'], () => (require('./compact') as typeof import('./compact')).registerCompact],
];

// Global options that take a value (the command name comes after them).
const VALUE_OPTIONS = new Set(['-c', '--config', '-d', '--data-dir']);

/** Where the top-level command stands on the command line (-1: none). */
function commandIndex(args: string[]): number {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') return i + 1 < args.length ? i + 1 : -1;
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-')) return i;
  }
  return -1;
}

/** The top-level command named on the command line, if any. */
export function commandName(args: string[]): string | undefined {
  const i = commandIndex(args);
  return i < 0 ? undefined : args[i];
}

/**
 * The CLI; with `only`, just the group holding that command (when it names
 * one), and with `sub` just that subcommand of the group (when it names one);
 * `noGroups` (a bare --version) loads none.
 */
export function buildProgram(only?: string, sub?: string, noGroups = false): Command {
  const program = new Command('guts-node');
  program
    .description('Guts node storage engine: git-object store, hot backups, verify, restore, WAL archiving')
    .version(VERSION)
    .option('-c, --config <path>', 'config file (env GUTS_CONFIG); a named file must exist, only the default /etc/guts/config.yaml may be absent', undefined)
    .option('-d, --data-dir <dir>', 'data directory (env GUTS_DATA_DIR; default storage.data_dir)')
    .addHelpText(
      'after',
      `
Exit codes:
  0    success
  1    the data was checked and is invalid or corrupt
  2    usage, configuration or I/O error
  3    the store is locked by a running node or another process
  130  interrupted (nothing half-written is left)`,
    );
  const group = only === undefined ? undefined : GROUPS.find(([names]) => names.includes(only));
  if (!noGroups) for (const g of group ? [group] : GROUPS) g[1]()(program, group ? sub : undefined);
  installUsageErrors(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  // Every command runs under umask 077. RocksDB creates its files 0644 & ~umask
  // and its dirs 0755 & ~umask whatever it is asked, even in a read-only open
  // (LOG, LOG.old.*: verify, status, export), so the umask is what keeps a
  // store owner-only (dirs 0700, files 0600): any local user could otherwise
  // copy db/ and export private repositories. `export` writes private
  // repositories too.
  process.umask(0o077);
  const args = argv.slice(2);
  const at = commandIndex(args);
  const name = at < 0 ? undefined : args[at];
  // The subcommand named right after the command (`backup verify`): the group loads only its module.
  const next = at < 0 ? undefined : args[at + 1];
  const sub = next !== undefined && !next.startsWith('-') ? next : undefined;
  // `guts-node --version` alone needs no command module (~100 ms of requires).
  const versionOnly = name === undefined && args.length === 1 && (args[0] === '--version' || args[0] === '-V');
  // A write past RLIMIT_FSIZE must fail with EFBIG (GUTS_NO_SPACE, cleanup,
  // exit 2), not kill the process. The addon ignores SIGXFSZ when nothing
  // handles it; this listener also covers a preloaded handler that would
  // re-raise it (signal-exit, as test runners and some tools preload).
  process.on('SIGXFSZ', () => {});
  try {
    await buildProgram(name, sub, versionOnly).parseAsync(argv);
  } catch (err) {
    // Actions report their own errors (run()); what arrives here is a usage error.
    if (!(err instanceof UsageError)) throw err;
    process.exitCode = reportError(err, jsonRequested(argv.slice(2)));
  }
}
