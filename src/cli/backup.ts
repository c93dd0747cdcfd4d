import { Command } from 'commander';

import { registerBackupCreate } from './backup-create';
import { registerBackupOps, registerBackupRun } from './backup-ops';
import { registerBackupRestore } from './backup-restore';
import { registerBackupVerify } from './backup-verify';
import { registerBackupExport } from './backup-repo';

export function registerBackup(program: Command): void {
  const backup = program.command('backup').description('create, verify, restore, list and prune backups; run the whole scheduled job');
  registerBackupCreate(backup);
  registerBackupVerify(backup);
  registerBackupRestore(backup);
  registerBackupOps(backup);
  registerBackupRun(backup);
  registerBackupExport(backup);
}
