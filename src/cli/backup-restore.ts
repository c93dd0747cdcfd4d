import { Command } from 'commander';

export function registerBackupRestore(backup: Command): void {
  void backup;
}
