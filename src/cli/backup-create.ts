import { Command } from 'commander';

export function registerBackupCreate(backup: Command): void {
  void backup;
}
