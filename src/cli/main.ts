// guts-node: a thin commander layer over the library API (src/*.ts).
import { Command } from 'commander';

import { ExitCode } from '../errors';
import { VERSION } from '../version';
import { registerBackup } from './backup';
import { registerConfig } from './config';
import { registerData } from './data';
import { registerDemo } from './demo';
import { registerNode } from './node';
import { registerVerify } from './verify';

export function buildProgram(): Command {
  const program = new Command('guts-node');
  program
    .description('Guts node storage engine: git-object store, hot backups, verify, restore, WAL archiving')
    .version(VERSION)
    .option('-c, --config <path>', 'config file (env GUTS_CONFIG)', undefined)
    .option('-d, --data-dir <dir>', 'data directory (env GUTS_DATA_DIR; default storage.data_dir)')
    .showHelpAfterError()
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
  program.exitOverride((err) => {
    // commander's own usage errors: exit 2 like every other usage error.
    process.exit(err.exitCode === 0 ? 0 : ExitCode.ERROR);
  });
  registerBackup(program);
  registerVerify(program);
  registerNode(program);
  registerConfig(program);
  registerData(program);
  registerDemo(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  // A write past RLIMIT_FSIZE must fail with EFBIG (GUTS_NO_SPACE, cleanup,
  // exit 2), not kill the process. The addon ignores SIGXFSZ when nothing
  // handles it; this listener also covers a preloaded handler that would
  // re-raise it (signal-exit, as test runners and some tools preload).
  process.on('SIGXFSZ', () => {});
  await buildProgram().parseAsync(argv);
}
