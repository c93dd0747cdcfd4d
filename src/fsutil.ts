// Durable file writes: temp file in the same dir, fsync, rename, fsync dir.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { fsError } from './errors';

let tempSeq = 0;

/**
 * A temp name beside `file` that no other write in this process (or another
 * process) picks: pid + a per-process counter + random. A millisecond clock is
 * not enough, two writes of one file in the same millisecond (state.json from
 * the WAL tail and the archive loop) shared one temp file and the second
 * rename failed with ENOENT.
 */
export function tempPathFor(file: string, tag = 'tmp'): string {
  const unique = `${process.pid}-${(tempSeq++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  return path.join(path.dirname(file), `.${path.basename(file)}.${tag}-${unique}`);
}

/** The parts of a name tempPathFor made (or an older build's `.<base>.<tag>-<pid>[-<ms>]`); null for any other name. */
export function parseTempName(name: string): { base: string; tag: string; pid: number } | null {
  const m = /^\.(.+)\.([a-z]+)-(\d+)(?:-[0-9a-z]+)*$/.exec(name);
  return m ? { base: m[1], tag: m[2], pid: Number(m[3]) } : null;
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o600, flag: 'w' | 'wx' = 'w'): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fs.fchmodSync(fd, mode);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (flag === 'wx') {
      // link() fails if the target exists: never replace an existing file.
      fs.linkSync(tmp, file);
      fs.unlinkSync(tmp);
    } else {
      fs.renameSync(tmp, file);
    }
    fsyncDir(path.dirname(file));
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw fsError(e, 'cannot write', file);
  }
}

/**
 * writeFileAtomic off the event loop (the fsyncs run on libuv's pool): for a
 * server whose requests must not wait for a journal commit.
 */
export async function writeFileAtomicAsync(file: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = tempPathFor(file);
  try {
    const fh = await fs.promises.open(tmp, 'w', mode);
    try {
      await fh.writeFile(typeof data === 'string' ? Buffer.from(data) : data);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
    const dh = await fs.promises.open(path.dirname(file), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (e) {
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw fsError(e, 'cannot write', file);
  }
}

/** Total bytes of regular files under dir (no symlink following). */
export function dirSize(dir: string): number {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += dirSize(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

export function isProcessAlive(pid: number): boolean {
  if (!pid || pid < 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
