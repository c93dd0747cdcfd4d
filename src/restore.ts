// `backup restore`: extract into a staging dir beside the target (same file
// system), checking every file against GUTS-INDEX while writing and against
// MANIFEST.json at the end, fsync everything, optionally run the full object
// check, then put it in place with one atomic rename (or RENAME_EXCHANGE when
// the target exists). Until that rename the target is untouched, so kill -9
// at any moment leaves it as it was; the next run removes the leftover
// staging dir of a dead process. Nothing is written outside the staging dir
// except --key-to / --config-to, which never silently replace a different file.
// A target that is a mount point cannot be renamed: there the staging dir is
// inside the target and the top-level entries are exchanged one by one
// (atomic per entry, not as a whole).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BackupKind, checkArchive, CONFIG_ENTRY, KEY_ENTRY, Manifest, notArchiveError, ObjectCounts, readArchive, readSidecar, statArchive } from './archive';
import { checkExtractedObjects } from './backup-verify';
import { fsError, GutsError } from './errors';
import { fsyncDir, isProcessAlive, writeFileAtomic } from './fsutil';
import type { ArchiveSource } from './location/backup-stream';
import { native, ReadArchiveResult, TaskHandle } from './native';
import { checkReplaceable, refuseLiveStoreTarget, resolveStorePath } from './restore-guard';

export interface RestoreOptions {
  file: string;
  /** read the archive from here (an S3 object, streamed) instead of the file `file` */
  source?: ArchiveSource;
  target: string;
  /** run the full object check on the staged store before putting it in place */
  verify?: boolean;
  /** replace a non-empty target that looks like a data dir (restore-guard.ts checkReplaceable) */
  force?: boolean;
  /** replace a non-empty target whatever it holds */
  forceAny?: boolean;
  keyTo?: string;
  configTo?: string;
  threads?: number;
  /** notes for the operator (stderr) */
  log?: (line: string) => void;
  onTask?: (h: TaskHandle<unknown>, label: string) => void;
  /**
   * A step on the staged data dir after the base is extracted and checked,
   * before --verify, the final checks and the swap (point-in-time restore
   * replays archived WAL here). It may return the object counts the staged
   * store now holds, which --verify then expects instead of the manifest's.
   * A throw removes the staging dir: the target stays untouched.
   */
  afterExtract?: (staging: string, manifest: Manifest) => Promise<StagedCounts | void>;
  /**
   * Fills the staging dir from somewhere other than an archive (a backup
   * repository snapshot, src/backup/repo-read.ts): every file written, checked
   * and fsynced, and the archive-style manifest it matches returned. `file` is
   * then only the name used in messages and reports; --key-to / --config-to
   * are not available.
   */
  extract?: (staging: string) => Promise<ExtractedBase>;
}

export interface ExtractedBase {
  manifest: Manifest;
  format: string;
  /** regular files written and their total size */
  files: number;
  bytes: number;
  /** bytes read from storage */
  stored_bytes: number;
}

export interface StagedCounts {
  objects: ObjectCounts;
  repositories: number;
}

export interface RestoreReport {
  file: string;
  target: string;
  format: string;
  kind: BackupKind;
  created: string;
  files: number;
  bytes: number;
  archive_bytes: number;
  objects: ObjectCounts;
  repositories: number;
  verified: boolean;
  replaced_existing: boolean;
  key_to?: { path: string; action: 'written' | 'unchanged' };
  config_to?: { path: string; action: 'written' | 'unchanged' };
  removed_leftovers: string[];
  /** measured recovery time */
  elapsed_ms: number;
}

const STAGING = /^\.(.+)\.restore-(\d+)\.staging$/;
/** staging dir inside a target that is a mount point (renames cannot cross file systems) */
const STAGING_INSIDE = /^\.guts-restore-(\d+)\.staging$/;
/** entries of a data dir that do not make it "non-empty" */
const IGNORED = new Set(['lost+found']);

export function stagingDirFor(target: string, pid = process.pid, mountPoint = false): string {
  if (mountPoint) return path.join(target, `.guts-restore-${pid}.staging`);
  return path.join(path.dirname(target), `.${path.basename(target)}.restore-${pid}.staging`);
}

/** Removes staging dirs of dead restores into `target`; refuses while another restore runs. */
export function cleanLeftoverStaging(target: string, log?: (line: string) => void): string[] {
  const removed: string[] = [];
  const scan = (dir: string, match: (name: string) => number) => {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    let any = false;
    for (const name of names) {
      const pid = match(name);
      if (!pid) continue;
      const leftover = path.join(dir, name);
      if (pid !== process.pid && isProcessAlive(pid)) {
        throw new GutsError('GUTS_LOCKED', `another restore (process ${pid}) is writing ${leftover}`, leftover);
      }
      fs.rmSync(leftover, { recursive: true, force: true });
      removed.push(leftover);
      any = true;
      log?.(`removed leftover staging dir ${leftover} of an interrupted restore (process ${pid})`);
    }
    if (any) fsyncDir(dir);
  };
  const base = path.basename(target);
  scan(path.dirname(target), (name) => {
    const m = STAGING.exec(name);
    return m && m[1] === base ? Number(m[2]) : 0;
  });
  scan(target, (name) => {
    const m = STAGING_INSIDE.exec(name);
    return m ? Number(m[1]) : 0;
  });
  return removed;
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fsError(e, 'cannot stat', p);
  }
}

/** Hard-links src (a file or a tree) to dst: the same inodes, nothing copied. */
function linkTree(src: string, dst: string): void {
  const st = fs.lstatSync(src);
  if (st.isDirectory()) {
    fs.mkdirSync(dst, { mode: st.mode & 0o7777 });
    for (const name of fs.readdirSync(src)) linkTree(path.join(src, name), path.join(dst, name));
    fsyncDir(dst);
  } else {
    fs.linkSync(src, dst);
  }
}

/**
 * Mount-point targets: each top-level entry of staging replaces the target's
 * (RENAME_EXCHANGE, atomic per entry); with removeOld, the target's other
 * entries move into staging to be deleted with it.
 */
function swapEntries(staging: string, target: string, removeOld: boolean): void {
  const fresh = fs.readdirSync(staging);
  for (const name of fresh) {
    const dst = path.join(target, name);
    if (lstatOrNull(dst)) native.renameExchange(path.join(staging, name), dst);
    else fs.renameSync(path.join(staging, name), dst);
  }
  if (removeOld) {
    const keep = new Set(fresh);
    for (const name of fs.readdirSync(target)) {
      if (keep.has(name) || IGNORED.has(name) || STAGING_INSIDE.test(name)) continue;
      fs.renameSync(path.join(target, name), path.join(staging, name));
    }
  }
  fsyncDir(target);
}

/** Decides what to do with an archived secret's destination; throws GUTS_EXISTS on a different file. */
function checkSecretDest(dest: string, data: Buffer, what: string): 'write' | 'unchanged' {
  const st = lstatOrNull(dest);
  if (!st) return 'write';
  if (!st.isFile()) throw new GutsError('GUTS_EXISTS', `${dest} exists and is not a regular file (refusing to replace it with the archived ${what})`, dest);
  if (fs.readFileSync(dest).equals(data)) return 'unchanged';
  throw new GutsError('GUTS_EXISTS', `${dest} exists and differs from the archived ${what} (refusing to replace it)`, dest);
}

/** What the rest of the restore needs from the extraction step. */
interface StagedRead {
  manifest: Manifest;
  format: string;
  files: Array<{ size: number }>;
  archiveBytes: number;
  memory: Record<string, Buffer>;
}

async function extractedAsRead(x: ExtractedBase): Promise<StagedRead> {
  return { manifest: x.manifest, format: x.format, files: x.manifest.files, archiveBytes: x.stored_bytes, memory: {} };
}

/** The archive into the staging dir, checked against its index, manifest and sidecar. */
async function readIntoStaging(opts: RestoreOptions, src: ArchiveSource | undefined, file: string, staging: string): Promise<StagedRead> {
  const sidecar = src ? src.sidecar : readSidecar(file);
  const options = { path: file, threads: opts.threads, extractTo: staging, fsync: true, failFast: true, sha256: Boolean(sidecar?.sha256), skipFrameChecksums: Boolean(sidecar?.sha256), inMemory: [KEY_ENTRY, CONFIG_ENTRY] };
  const onTask = (h: TaskHandle<ReadArchiveResult>) => opts.onTask?.(h, 'restore');
  const read = (o: Parameters<typeof readArchive>[0], t?: typeof onTask) => (src ? src.read((input) => readArchive({ ...o, ...input }, t)) : readArchive(o, t));
  const r = await read(options, onTask).catch(async (e: GutsError) => {
    if (e?.code !== 'GUTS_NOT_ARCHIVE' || !sidecar?.sha256) throw e;
    // Fail-fast stopped before the digest: take it, to tell "not a backup" from "what is left of one".
    const whole = await read({ path: file, threads: opts.threads, sha256: true, layout: [] });
    throw notArchiveError(file, e.message.replace(/^.* is not a guts-node backup archive: /, ''), sidecar, whole.sha256);
  });
  if (sidecar && !sidecar.sha256) throw new GutsError('GUTS_CORRUPT', `${sidecar.file}: ${sidecar.problem}`, sidecar.file);
  if (sidecar && sidecar.sha256 !== r.sha256) {
    throw new GutsError('GUTS_CORRUPT', `SHA-256 of ${file} is ${r.sha256}, ${path.basename(sidecar.file)} says ${sidecar.sha256}`, file);
  }
  const checked = checkArchive(r);
  if (checked.problems.length || !checked.manifest) {
    const p = checked.problems[0] ?? { path: 'MANIFEST.json', code: 'GUTS_CORRUPT', message: 'unusable' };
    throw new GutsError(p.code === 'GUTS_UNSAFE_PATH' ? 'GUTS_UNSAFE_PATH' : 'GUTS_CORRUPT', `${p.path || path.basename(file)}: ${p.message}`, p.path);
  }
  const files = r.entries.filter((e) => e.type === 'file' && e.path !== KEY_ENTRY && e.path !== CONFIG_ENTRY);
  return { manifest: checked.manifest, format: r.format, files, archiveBytes: r.archiveBytes, memory: r.memory };
}

export async function restoreBackup(opts: RestoreOptions): Promise<RestoreReport> {
  const t0 = Date.now();
  const src = opts.source;
  const ext = opts.extract;
  const file = src ? src.url : ext ? opts.file : path.resolve(opts.file);
  if (ext && (opts.keyTo || opts.configTo)) throw new GutsError('GUTS_INVALID_ARGUMENT', `${file} holds no node key or config: --key-to / --config-to need an archive`);
  if (!src && !ext) statArchive(file);
  // The physical path: "..", symlinks and /var/lib/guts -> /data/guts all
  // restore into (and are checked as) the directory the kernel would write to.
  const target = resolveStorePath(opts.target);
  if (lstatOrNull(target)?.isSymbolicLink()) throw new GutsError('GUTS_NOT_FOUND', `target ${opts.target} is a symbolic link to a missing directory`, opts.target);
  const parent = path.dirname(target);
  if (target === parent) throw new GutsError('GUTS_INVALID_ARGUMENT', `cannot restore into ${target}`);

  // Before anything is created or removed (staging dir, leftovers, parents).
  await refuseLiveStoreTarget(target);
  // An archive kept inside the target would be deleted by the swap it feeds.
  if (!src && !ext) {
    const real = resolveStorePath(file);
    if (real === target || real.startsWith(target + path.sep)) {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `archive ${file} lies inside the target ${target}: restoring would delete it (move it out of ${target} first)`, file);
    }
  }
  // --key-to / --config-to write outside the target: never into (or around) a live store either.
  for (const p of [opts.keyTo, opts.configTo]) if (p) await refuseLiveStoreTarget(resolveStorePath(path.dirname(path.resolve(p))), 'write a restored file into');
  fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
  const removed = cleanLeftoverStaging(target, opts.log);

  const tst = lstatOrNull(target);
  if (tst && !tst.isDirectory()) throw new GutsError('GUTS_EXISTS', `target ${target} exists and is not a directory`, target);
  // A target that is a mount point (a new disk mounted at the data dir) cannot
  // be renamed: stage inside it and move entries one by one instead.
  const mountPoint = Boolean(tst && tst.dev !== fs.statSync(parent).dev);
  const targetEntries = tst ? fs.readdirSync(target).filter((n) => !IGNORED.has(n) && !STAGING_INSIDE.test(n)) : [];
  checkReplaceable(target, targetEntries, { force: opts.force, forceAny: opts.forceAny });
  const keyTo = opts.keyTo ? path.resolve(opts.keyTo) : undefined;
  const configTo = opts.configTo ? path.resolve(opts.configTo) : undefined;
  for (const p of [keyTo, configTo]) {
    if (p && (p === target || p.startsWith(target + path.sep))) {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `${p} is inside the target data dir (keys and config are restored elsewhere)`, p);
    }
  }

  const staging = stagingDirFor(target, process.pid, mountPoint);
  try {
    fs.mkdirSync(staging, { mode: 0o700 });
  } catch (e) {
    throw fsError(e, 'cannot create staging dir', staging);
  }
  let stagingHoldsOldData = false;
  try {
    const r = ext ? await extractedAsRead(await ext(staging)) : await readIntoStaging(opts, src, file, staging);
    const manifest: Manifest = r.manifest;

    // Directory entries for the secrets' dirs may have been created: they do not belong in a data dir.
    for (const d of ['keys', 'config']) {
      try {
        fs.rmdirSync(path.join(staging, d));
      } catch {
        /* absent or holds other files */
      }
    }

    const staged = (await opts.afterExtract?.(staging, manifest)) ?? undefined;
    const expected: Manifest = staged ? { ...manifest, objects: staged.objects, repositories: staged.repositories } : manifest;

    if (opts.verify) {
      if (manifest.kind === 'consensus-only') opts.log?.('--verify: consensus-only archive holds no git objects; object check skipped');
      else {
        const c = await checkExtractedObjects(staging, expected, opts.threads);
        if (c.problems.length) throw new GutsError('GUTS_CORRUPT', `staged store failed the object check: ${c.problems[0].message}`, staging);
      }
    }

    const secrets: Array<{ dest: string; entry: string; what: string; action?: 'write' | 'unchanged' }> = [];
    if (keyTo) secrets.push({ dest: keyTo, entry: KEY_ENTRY, what: 'node key' });
    if (configTo) secrets.push({ dest: configTo, entry: CONFIG_ENTRY, what: 'config' });
    for (const s of secrets) {
      const data = r.memory[s.entry];
      if (!data) throw new GutsError('GUTS_NOT_FOUND', `${path.basename(file)} holds no ${s.entry} (created without it?)`, file);
      s.action = checkSecretDest(s.dest, data, s.what);
    }

    // A consensus-only archive replaces consensus/ only: carry everything else over (hard links).
    if (manifest.kind === 'consensus-only' && tst && !mountPoint) {
      const staged = new Set(fs.readdirSync(staging));
      for (const name of targetEntries) if (!staged.has(name)) linkTree(path.join(target, name), path.join(staging, name));
    }
    fsyncDir(staging);

    await refuseLiveStoreTarget(target); // a node may have started meanwhile
    for (const s of secrets) {
      if (s.action !== 'write') continue;
      fs.mkdirSync(path.dirname(s.dest), { recursive: true, mode: 0o700 });
      writeFileAtomic(s.dest, r.memory[s.entry], 0o600, 'wx');
    }
    if (mountPoint) {
      swapEntries(staging, target, manifest.kind !== 'consensus-only');
      fs.chmodSync(target, 0o700); // renamed targets are the 0700 staging dir; a mount point keeps its own mode
      stagingHoldsOldData = true;
    } else if (tst) {
      native.renameExchange(staging, target);
      stagingHoldsOldData = true;
    } else {
      fs.renameSync(staging, target);
    }
    fsyncDir(parent);
    if (stagingHoldsOldData) {
      fs.rmSync(staging, { recursive: true, force: true });
      fsyncDir(parent);
    }
    const files = r.files;
    const secretReport = (p: string | undefined, entry: string) => {
      const s = secrets.find((x) => x.entry === entry);
      return p && s ? { path: p, action: s.action === 'write' ? ('written' as const) : ('unchanged' as const) } : undefined;
    };
    const report: RestoreReport = {
      file,
      target,
      format: r.format,
      kind: manifest.kind,
      created: manifest.created,
      files: files.length,
      bytes: files.reduce((s, e) => s + e.size, 0),
      archive_bytes: r.archiveBytes,
      objects: expected.objects,
      repositories: expected.repositories,
      verified: Boolean(opts.verify),
      replaced_existing: Boolean(tst) && targetEntries.length > 0,
      removed_leftovers: removed,
      elapsed_ms: Date.now() - t0,
    };
    const k = secretReport(keyTo, KEY_ENTRY);
    if (k) report.key_to = k;
    const c = secretReport(configTo, CONFIG_ENTRY);
    if (c) report.config_to = c;
    return report;
  } catch (e) {
    // Before the exchange the staging dir holds the partial new data; after it
    // holds the old data being removed. Either way it goes.
    fs.rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}
