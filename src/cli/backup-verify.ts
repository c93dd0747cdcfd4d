import { Command } from 'commander';

export function registerBackupVerify(backup: Command): void {
  void backup;
}
