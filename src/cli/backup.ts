import { Command } from 'commander';

import { registerBackupCreate } from './backup-create';
import { registerBackupRestore } from './backup-restore';
import { registerBackupVerify } from './backup-verify';

export function registerBackup(program: Command): void {
  const backup = program.command('backup').description('create, verify and restore backups');
  registerBackupCreate(backup);
  registerBackupVerify(backup);
  registerBackupRestore(backup);
}
