// guts-node wal …: continuous WAL archiving (push/fetch: the built-in archive target).
import { Command } from 'commander';

import { registerWalArchive } from './wal-archive';
import { registerWalVerify } from './wal-verify';
import { registerWalNode } from './wal-node';

export function registerWal(program: Command): void {
  const wal = program.command('wal').description('continuous WAL archiving: the built-in archive target, archive checks');
  registerWalArchive(wal);
  registerWalVerify(wal);
  registerWalNode(wal);
}
