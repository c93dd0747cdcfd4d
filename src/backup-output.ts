// Where `backup create` may write: the output directory must exist and be
// writable; an existing file under the output name is replaced only when it
// is a guts-node archive (rotation by name, as the guide's hourly
// `consensus-$(date +%H).tar.gz` cron line needs) or with --force. The
// replacement itself is atomic and happens once the new archive is complete
// (native/archive_writer.cc, PartialFile::Commit).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

import { INDEX_NAME } from './archive';
import { fsError, GutsError } from './errors';

/** Bytes read from the start of a file to find its first tar header. */
const HEAD_BYTES = 256 * 1024;

/** The first bytes of the tar stream in `head` (the start of a .tar, .tar.gz or .tar.zst), or null. */
function tarStart(head: Buffer): Buffer | null {
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) {
    // zstd: decode only until the first header is out (a frame is up to 64 MiB).
    const { DCtx } = require('zstd-napi/binding') as typeof import('zstd-napi/binding');
    const dctx = new DCtx();
    const out = Buffer.alloc(512);
    let produced = 0;
    let consumed = 0;
    while (produced < out.length && consumed < head.length) {
      const [, p, c] = dctx.decompressStream(out.subarray(produced), head.subarray(consumed));
      if (p === 0 && c === 0) break;
      produced += p;
      consumed += c;
    }
    return out.subarray(0, produced);
  }
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    // gzip: the head of the first member; a cut-off member still yields its start.
    return zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  }
  return head;
}

/**
 * Whether `file` starts like an archive this tool writes: its first tar entry
 * is GUTS-INDEX (docs/FORMAT.md). Damaged further on still counts: it is ours
 * to rotate. Unreadable or anything else: false.
 */
export function isGutsArchive(file: string): boolean {
  let head: Buffer;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      head = Buffer.alloc(HEAD_BYTES);
      head = head.subarray(0, fs.readSync(fd, head, 0, HEAD_BYTES, 0));
    } finally {
      fs.closeSync(fd);
    }
    const tar = tarStart(head);
    if (!tar || tar.length < 512) return false;
    const name = tar.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    return name === INDEX_NAME && tar.subarray(257, 262).toString('latin1') === 'ustar';
  } catch {
    return false;
  }
}

/**
 * Checks the output path before any work is done. Returns whether an existing
 * file will be replaced: a guts-node archive (rotation) or anything with
 * `force`. A directory, a symlink or any other file is GUTS_EXISTS.
 */
export function checkOutput(output: string, force: boolean): { replaces: boolean } {
  const dir = path.dirname(output);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    throw fsError(e, 'output directory', dir);
  }
  if (!st.isDirectory()) throw new GutsError('GUTS_NOT_FOUND', `output directory ${dir} is not a directory`, dir);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new GutsError('GUTS_PERMISSION', `output directory ${dir} is not writable`, dir);
  }
  let existing: fs.Stats | null = null;
  try {
    existing = fs.lstatSync(output);
  } catch {
    /* absent: fine */
  }
  if (!existing) return { replaces: false };
  if (existing.isDirectory()) throw new GutsError('GUTS_EXISTS', `${output} is a directory`, output);
  if (force) return { replaces: true };
  if (existing.isFile() && isGutsArchive(output)) return { replaces: true };
  throw new GutsError('GUTS_EXISTS', `${output} already exists and is not a guts-node archive (use --force to overwrite)`, output);
}
