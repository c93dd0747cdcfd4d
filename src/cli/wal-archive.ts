// guts-node wal push %p / wal fetch %f %p: the built-in archive target of
// `wal.archive_dir`, written to be the archive and restore commands themselves:
//   wal.archive_command = 'guts-node wal push %p'
//   wal.restore_command = 'guts-node wal fetch %f %p'
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { fsError, GutsError } from '../errors';
import { decodeHistory, decodeSegment, parseHistoryName, parseSegmentName } from '../wal/segment';
import { checkArchiveName, openWalLocation } from '../wal/target';

/** Only our WAL files go into the archive, and only whole, valid ones (the archive is what restores read). */
async function checkArchivable(name: string, src: string): Promise<void> {
  const segment = parseSegmentName(name) !== null;
  if (!segment && parseHistoryName(name) === null) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `${src}: not a WAL file name (<8 hex>-<16 hex>.gwal or <8 hex>.history): wal push archives only WAL segments and timeline histories`, src);
  }
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(src);
  } catch (e) {
    throw fsError(e, 'cannot read', src);
  }
  try {
    if (segment) await decodeSegment(buf, name);
    else decodeHistory(buf, name);
  } catch (e) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `${src} is not a valid WAL ${segment ? 'segment' : 'history file'}, not archived: ${(e as Error).message}`, src);
  }
}
import { context, printJson, run } from './context';

interface TargetFlags {
  archiveDir?: string;
  json?: boolean;
}

export function registerWalArchive(wal: Command): void {
  wal
    .command('push')
    .description('archive one WAL file into wal.archive_dir (atomic; an identical re-push succeeds, a different file under an existing name fails)')
    .argument('<path>', 'the file to archive (%p); it is stored under its own name')
    .option('--archive-dir <dir>', 'archive location: a directory or s3://bucket/prefix (default: wal.archive_dir)')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
Meant as the archive command: guts-node config set wal.archive_command 'guts-node wal push %p'
Exit codes: 0 archived (or already archived with the same bytes), 2 anything
else (GUTS_EXISTS: a different file is archived under that name).`,
    )
    .action(
      run(async (file: string, opts: TargetFlags, cmd: Command) => {
        const { loaded } = context(cmd);
        const loc = openWalLocation(opts.archiveDir ?? loaded.config.wal.archive_dir, loaded.config);
        const src = path.resolve(file);
        const name = checkArchiveName(path.basename(src));
        await checkArchivable(name, src);
        const action = await loc.put(name, src);
        if (opts.json) printJson({ name, path: src, archive: loc.url, action, size_bytes: fs.statSync(src).size });
      }),
    );
  wal
    .command('fetch')
    .description('copy one archived WAL file from wal.archive_dir to a path (exit 1, silently, when it is not archived)')
    .argument('<name>', 'archived file name (%f)')
    .argument('<path>', 'destination (%p), written atomically')
    .option('--archive-dir <dir>', 'archive location: a directory or s3://bucket/prefix (default: wal.archive_dir)')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      `
Meant as the restore command: guts-node config set wal.restore_command 'guts-node wal fetch %f %p'
Exit codes: 0 fetched, 1 no such file in the archive (nothing printed, as a
restore command reports the end of the archive), 2 any other error.`,
    )
    .action(
      run(async (name: string, dest: string, opts: TargetFlags, cmd: Command) => {
        const { loaded } = context(cmd);
        const loc = openWalLocation(opts.archiveDir ?? loaded.config.wal.archive_dir, loaded.config);
        const destPath = path.resolve(dest);
        const found = await loc.get(checkArchiveName(name), destPath);
        if (opts.json) printJson({ name, path: destPath, archive: loc.url, found, ...(found ? { size_bytes: fs.statSync(destPath).size } : {}) });
        return found ? 0 : 1;
      }),
    );
}
