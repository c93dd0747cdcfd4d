// A store must be private to the node's user: every repository, private ones
// included, can be exported from a copy of db/. Stores are created owner-only
// (dirs 0700, files 0600: umask 077 in the writing commands, explicit modes in
// native/); this finds existing stores that are not, for `verify --data-dir`,
// `status` and `serve` to warn about.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { dataDirLayout } from './store';

const GROUP_OTHER = 0o077;

function modeOf(p: string): number | null {
  try {
    return fs.lstatSync(p).mode;
  } catch {
    return null;
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * One line per problem (empty when the store is private): the data dir and
 * its store dirs with any group/other permission, and the files in db/ and
 * consensus/ (and the data dir's own files) that group or other may access.
 * Unreadable entries are skipped: a user who cannot list them cannot judge.
 */
export function storePermissionWarnings(dataDir: string): string[] {
  const dir = path.resolve(dataDir);
  const l = dataDirLayout(dir);
  const warnings: string[] = [];
  const hint = `(run: chmod -R go-rwx ${dir})`;

  const dirs = [dir, l.db, l.consensus, l.checkpoints].filter((d) => {
    const m = modeOf(d);
    return m !== null && (m & fs.constants.S_IFMT) === fs.constants.S_IFDIR && (m & GROUP_OTHER) !== 0;
  });
  if (dirs.length) {
    const shown = dirs.map((d) => `${d} (${octal(modeOf(d)!)})`).join(', ');
    warnings.push(`store directories are accessible to group/other users: ${shown}; they should be 0700 ${hint}`);
  }

  const open: string[] = [];
  const scan = (d: string) => {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of names) {
      if (!e.isFile()) continue;
      const p = path.join(d, e.name);
      const m = modeOf(p);
      if (m !== null && (m & GROUP_OTHER) !== 0) open.push(p);
    }
  };
  scan(dir);
  scan(l.db);
  scan(l.consensus);
  if (open.length) {
    const first = open[0];
    warnings.push(
      `${open.length} store file${open.length === 1 ? ' is' : 's are'} accessible to group/other users (e.g. ${first}, mode ${octal(modeOf(first) ?? 0)}); they should be 0600 ${hint}`,
    );
  }
  return warnings;
}
