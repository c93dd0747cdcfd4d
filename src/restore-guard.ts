// What a command that replaces a store (backup restore, point-in-time restore)
// must check about its target before it creates or touches anything:
//
// - the target never equals, lies inside or contains a live store: a data dir
//   served by a running node, or any RocksDB LOCK held by this or another
//   process (swapping files out from under RocksDB loses every write after
//   it and leaves a store the next start cannot open);
// - --force only replaces what looks like a data dir or an earlier restore;
//   anything else needs --force-any.
//
// Paths are compared physically: the target is resolved with realpath of its
// nearest existing ancestor, so "..", symlinks and a link to the data dir all
// name the directory the kernel would write to.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { fsError, GutsError } from './errors';
import { isProcessAlive, parseTempName } from './fsutil';
import { probeSocket, readPidFile } from './daemon/runtime-files';
import { dataDirLayout, storeLockHolder } from './store';

/**
 * Top-level entries a guts data dir (or an earlier restore) may hold; --force
 * replaces a directory holding only these (plus atomic-write temp files like
 * ".last-backup.json.tmp-123-0-k3j9x").
 */
export const DATA_DIR_ENTRIES = new Set(['db', 'consensus', 'checkpoints', 'last-backup.json', 'node.pid', 'admin.sock', 'lost+found', 'wal']);
/** An atomic-write temp file (fsutil.tempPathFor) of one of the data dir's own files. */
function isAtomicTemp(name: string): boolean {
  const t = parseTempName(name);
  return t?.tag === 'tmp' && (t.base === 'last-backup.json' || t.base === 'node.pid');
}

/**
 * The physical absolute path `target` names, as the kernel reads it: each
 * existing component through realpath (symlinks followed, ".." is the parent
 * of where a link points), the missing tail appended as written.
 */
export function resolveStorePath(target: string): string {
  const raw = path.isAbsolute(target) ? target : `${process.cwd()}/${target}`;
  let cur = '/';
  const missing: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (missing.length) missing.pop();
      else cur = path.dirname(cur);
      continue;
    }
    if (missing.length) {
      missing.push(part);
      continue;
    }
    const next = path.join(cur, part);
    try {
      cur = fs.realpathSync.native(next);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fsError(e, 'cannot resolve', next);
      missing.push(part);
    }
  }
  return path.join(cur, ...missing);
}

function isInside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir === '/' ? '/' : dir + path.sep);
}

/** A process running guts-node (not some other process that reused a stale pid). */
function isGutsNodeProcess(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('guts-node');
  } catch {
    return true; // alive but hidden from us: assume the worst
  }
}

/** Why dir is a live data dir (a node serves it, or its store LOCK is held), or null. */
async function liveDataDir(dir: string): Promise<string | null> {
  const holder = storeLockHolder(dir);
  if (holder) return `its store is held open by process ${holder > 0 ? holder : '(unknown)'}${holder === process.pid ? ' (this process)' : ''}`;
  const l = dataDirLayout(dir);
  if ((await probeSocket(l.socket)) === 'alive') return `a running node answers on ${l.socket}`;
  const pid = readPidFile(dir);
  if (pid && pid !== process.pid && isGutsNodeProcess(pid)) return `a running node (process ${pid}, ${l.pidFile}) serves it`;
  return null;
}

interface HeldLock {
  pid: number;
  major: number;
  minor: number;
  ino: bigint;
}

/** Every lock in /proc/locks that is held (not waited for). */
function heldLocks(): HeldLock[] {
  let text: string;
  try {
    text = fs.readFileSync('/proc/locks', 'latin1');
  } catch {
    return [];
  }
  const out: HeldLock[] = [];
  // "1: POSIX  ADVISORY  WRITE 19410 fe:00:2146700 0 EOF"; waiters have "->" after the number.
  for (const m of text.matchAll(/^\d+:\s+(?!->)\S+\s+\S+\s+\S+\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/gm)) {
    out.push({ pid: Number(m[1]), major: parseInt(m[2], 16), minor: parseInt(m[3], 16), ino: BigInt(m[4]) });
  }
  return out;
}

function devOf(st: fs.BigIntStats): { major: number; minor: number } {
  // glibc's gnu_dev_major / gnu_dev_minor
  const d = st.dev;
  return {
    major: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)),
    minor: Number((d & 0xffn) | ((d >> 12n) & ~0xffn)),
  };
}

function sameFile(st: fs.BigIntStats, l: HeldLock): boolean {
  const d = devOf(st);
  return st.ino === l.ino && d.major === l.major && d.minor === l.minor;
}

/**
 * Path of a lock held under `root`, if any. Each holder's open files
 * (/proc/PID/fd) name the locked file exactly, by the path the holder opened.
 * Then every held lock is matched by device and inode against the LOCK files
 * found under root at a bounded depth: that catches holders that cannot be
 * inspected (another user's process, OFD locks; all of them with
 * inspectHolders false) and stores reached under root by another path (a
 * bind mount), which the rename and removal of root would reach too.
 */
export function lockHeldUnder(root: string, opts: { inspectHolders?: boolean } = {}): { file: string; pid: number } | null {
  const locks = heldLocks();
  if (!locks.length) return null;
  const byPid = new Map<number, HeldLock[]>();
  if (opts.inspectHolders !== false) for (const l of locks) if (l.pid > 0) byPid.set(l.pid, [...(byPid.get(l.pid) ?? []), l]);
  for (const [pid, held] of byPid) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // another user's process: the walk below
    }
    for (const fd of fds) {
      let file: string;
      try {
        file = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      if (!file.startsWith('/') || !isInside(file, root)) continue;
      try {
        const st = fs.statSync(file, { bigint: true });
        if (held.some((l) => sameFile(st, l))) return { file, pid };
      } catch {
        /* removed meanwhile */
      }
    }
  }
  // Bounded walk, every lock by device and inode: DIR/db/LOCK is depth 2, PARENT/DIR/db/LOCK depth 3.
  let budget = 5000;
  const walk = (dir: string, depth: number): { file: string; pid: number } | null => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return null;
    }
    for (const e of entries) {
      if (--budget < 0) return null;
      const p = path.join(dir, e.name);
      if (e.isFile() && e.name === 'LOCK') {
        try {
          const st = fs.statSync(p, { bigint: true });
          const l = locks.find((x) => sameFile(st, x));
          if (l) return { file: p, pid: l.pid };
        } catch {
          /* gone */
        }
      } else if (e.isDirectory() && depth < 4) {
        const hit = walk(p, depth + 1);
        if (hit) return hit;
      }
    }
    return null;
  };
  return walk(root, 1);
}

/**
 * GUTS_LOCKED (exit 3) when `target` equals, lies inside or contains a live
 * store: a data dir a running node serves (admin.sock answers, node.pid names
 * a live guts-node) or any RocksDB LOCK held by this or another process.
 * Reads only; call it before creating or removing anything. `target` should
 * come from resolveStorePath(). `action` names the command in the message.
 */
export async function refuseLiveStoreTarget(target: string, action = 'restore into'): Promise<void> {
  for (let dir = target; ; dir = path.dirname(dir)) {
    const why = await liveDataDir(dir);
    if (why) {
      const where = dir === target ? 'it is a live data dir' : `it is inside the live data dir ${dir}`;
      throw new GutsError('GUTS_LOCKED', `cannot ${action} ${target}: ${where}: ${why} (stop the node first)`, target);
    }
    if (path.dirname(dir) === dir) break;
  }
  const held = lockHeldUnder(target);
  if (held) {
    throw new GutsError(
      'GUTS_LOCKED',
      `cannot ${action} ${target}: it contains ${path.dirname(held.file)}, a store held open by process ${held.pid > 0 ? held.pid : '(unknown)'} (stop that process first)`,
      target,
    );
  }
}

/**
 * The --force rule for a non-empty target: without --force nothing is
 * replaced; --force replaces a directory holding only data-dir entries
 * (DATA_DIR_ENTRIES: a data dir or an earlier restore); anything else needs
 * --force-any, so a mistyped --target never empties a home or source dir.
 */
export function checkReplaceable(target: string, entries: string[], opts: { force?: boolean; forceAny?: boolean }): void {
  if (!entries.length || opts.forceAny) return;
  if (!opts.force) throw new GutsError('GUTS_EXISTS', `target ${target} is not empty (use --force to replace its data)`, target);
  const foreign = entries.filter((name) => !DATA_DIR_ENTRIES.has(name) && !isAtomicTemp(name));
  if (foreign.length) {
    const shown = foreign.slice(0, 3).map((n) => JSON.stringify(n)).join(', ') + (foreign.length > 3 ? `, … (${foreign.length} in all)` : '');
    throw new GutsError(
      'GUTS_EXISTS',
      `target ${target} does not look like a guts data dir (it holds ${shown}); --force replaces only data dirs and earlier restores, --force-any replaces any directory`,
      target,
    );
  }
}
