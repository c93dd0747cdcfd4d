import { Command } from 'commander';

// Each subcommand's module (and the library code it pulls in) is loaded only
// when the command line names it (all of them for `backup --help` or an
// unknown name): `backup verify` of a local file does not load the archive
// writer, the backup repository or the daemon client (~50 ms of requires).
type Sub = [string[], (backup: Command) => void];
const SUBS: Sub[] = [
  [['create'], (b) => (require('./backup-create') as typeof import('./backup-create')).registerBackupCreate(b)],
  [['verify'], (b) => (require('./backup-verify') as typeof import('./backup-verify')).registerBackupVerify(b)],
  [['restore'], (b) => (require('./backup-restore') as typeof import('./backup-restore')).registerBackupRestore(b)],
  [['list', 'prune'], (b) => (require('./backup-ops') as typeof import('./backup-ops')).registerBackupOps(b)],
  [['run'], (b) => (require('./backup-ops') as typeof import('./backup-ops')).registerBackupRun(b)],
  [['export'], (b) => (require('./backup-repo') as typeof import('./backup-repo')).registerBackupExport(b)],
];

export function registerBackup(program: Command, sub?: string): void {
  const backup = program.command('backup').description('create, verify, restore, list and prune backups; run the whole scheduled job');
  const only = sub === undefined ? undefined : SUBS.find(([names]) => names.includes(sub));
  for (const s of only ? [only] : SUBS) s[1](backup);
}
