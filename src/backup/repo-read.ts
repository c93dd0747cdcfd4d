// Reading a backup repository: list, verify, restore (into the archive
// restore's staging dir, src/restore.ts `extract`), export to a single-file
// archive. Every object is streamed through the native unpacker (one zstd
// frame, its checksum, the content's size and XXH3-128 against the snapshot).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { formatForPath } from '../backup';
import { checkExtractedObjects } from '../backup-verify';
import { errorCode, GutsError } from '../errors';
import { fsyncDir } from '../fsutil';
import { Location } from '../location';
import { ArchiveEntrySpec, native } from '../native';
import { ExtractedBase } from '../restore';
import { archiveManifestOf, checkObjectResult, loadSnapshots, pickSnapshot, pipeParallelLimit, pool, readObject, requireConfig, SnapshotEntry, SnapshotManifest } from './repo-format';

/** Local objects are read by the native worker straight from their file; S3 objects come through a pipe. */
function readParallel(loc: Location, requested?: number): number {
  return loc.kind === 'local' ? (requested ?? 4) : pipeParallelLimit(requested ?? 4);
}

export interface RepoSnapshotInfo {
  id: string;
  created: string;
  kind: string;
  files: number;
  total_bytes: number;
  stored_bytes: number;
  added_objects: number;
  added_bytes: number;
  objects: { commit: number; tree: number; blob: number; tag: number };
  repositories: number;
  wal_position: { timeline: number; segment: number; db_seq: number | null } | null;
  manifest: string;
}

export interface RepoListResult {
  repo: string;
  snapshots: RepoSnapshotInfo[];
  /** objects in data/ and files/ and their size (what the repository occupies) */
  repository_objects: number;
  repository_bytes: number;
}

export function snapshotInfo(s: SnapshotEntry): RepoSnapshotInfo {
  const m = s.manifest;
  return {
    id: m.id,
    created: m.created,
    kind: m.kind,
    files: m.files.length,
    total_bytes: m.total_bytes,
    stored_bytes: m.stored_bytes,
    added_objects: m.added_objects,
    added_bytes: m.added_bytes,
    objects: m.objects,
    repositories: m.repositories,
    wal_position: m.wal ? { timeline: m.wal.timeline, segment: m.wal.segment, db_seq: m.wal.db_seq } : null,
    manifest: s.url,
  };
}

export async function listRepo(loc: Location): Promise<RepoListResult> {
  await requireConfig(loc);
  const snaps = await loadSnapshots(loc);
  let objects = 0;
  let bytes = 0;
  for (const prefix of ['data/', 'files/']) for (const o of await loc.list(prefix)) {
    objects++;
    bytes += o.size;
  }
  return { repo: loc.url, snapshots: snaps.map(snapshotInfo), repository_objects: objects, repository_bytes: bytes };
}

export interface RepoVerifyProblem {
  object: string;
  code: string;
  message: string;
  /** every checked snapshot that references the object */
  snapshots: string[];
  paths: string[];
}

export interface RepoVerifyReport {
  repo: string;
  status: 'VALID' | 'INVALID';
  snapshots: Array<{ id: string; created: string; status: 'VALID' | 'INVALID'; files: number; objects_check?: { objects: number; repositories: number } }>;
  objects_checked: number;
  bytes_checked: number;
  deep: boolean;
  problems: RepoVerifyProblem[];
}

/**
 * Reads every object the chosen snapshots reference once (decompressed,
 * frame checksum, size and XXH3-128 against the manifest). A bad object is
 * reported once with every snapshot that depends on it. --deep also restores
 * each snapshot into a temp dir and runs the full object check (counts must
 * equal the manifest's).
 */
export async function verifyRepo(loc: Location, opts: { snapshot?: string; deep?: boolean; parallel?: number; tmpDir?: string; signal?: AbortSignal } = {}): Promise<RepoVerifyReport> {
  await requireConfig(loc);
  const all = await loadSnapshots(loc);
  const chosen = opts.snapshot ? [pickSnapshot(all, opts.snapshot, loc.url)] : all;
  const objects = new Map<string, { size: number; xxh3: string; snapshots: Set<string>; paths: Set<string> }>();
  const problems: RepoVerifyProblem[] = [];
  for (const s of chosen) {
    for (const f of s.manifest.files) {
      const o = objects.get(f.object);
      if (!o) objects.set(f.object, { size: f.size, xxh3: f.xxh3, snapshots: new Set([s.id]), paths: new Set([f.path]) });
      else {
        o.snapshots.add(s.id);
        o.paths.add(f.path);
        if (o.size !== f.size || o.xxh3 !== f.xxh3)
          problems.push({ object: loc.urlOf(f.object), code: 'GUTS_REPO_CORRUPT', message: `snapshots disagree on the content of ${f.object}`, snapshots: [...o.snapshots], paths: [...o.paths] });
      }
    }
  }
  let bytes = 0;
  const entries = [...objects.entries()];
  await pool(entries, readParallel(loc, opts.parallel), async ([key, o]) => {
    try {
      const r = await readObject(loc, key, { maxBytes: o.size, signal: opts.signal });
      bytes += r.storedBytes;
      checkObjectResult(loc, { object: key, size: o.size, xxh3: o.xxh3, path: [...o.paths][0] }, r);
    } catch (e) {
      const code = errorCode(e);
      if (code !== 'GUTS_REPO_CORRUPT' && code !== 'GUTS_CORRUPT') throw e;
      problems.push({ object: loc.urlOf(key), code: 'GUTS_REPO_CORRUPT', message: (e as Error).message, snapshots: [...o.snapshots].sort(), paths: [...o.paths].sort() });
    }
  });
  const bad = new Set(problems.flatMap((p) => p.snapshots));
  const report: RepoVerifyReport = {
    repo: loc.url,
    status: problems.length ? 'INVALID' : 'VALID',
    snapshots: chosen.map((s) => ({ id: s.id, created: s.manifest.created, status: bad.has(s.id) ? 'INVALID' : 'VALID', files: s.manifest.files.length })),
    objects_checked: objects.size,
    bytes_checked: bytes,
    deep: Boolean(opts.deep),
    problems,
  };
  if (opts.deep) {
    for (const [i, s] of chosen.entries()) {
      if (bad.has(s.id)) continue;
      const dir = fs.mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), 'guts-repo-verify-'));
      try {
        const x = await extractSnapshot(loc, s.manifest, dir, { parallel: opts.parallel, signal: opts.signal });
        const c = await checkExtractedObjects(dir, x.manifest);
        const n = c.counts ? c.counts.commit + c.counts.tree + c.counts.blob + c.counts.tag : 0;
        report.snapshots[i].objects_check = { objects: n, repositories: c.counts?.repositories ?? 0 };
        for (const p of c.problems) {
          report.problems.push({ object: s.url, code: p.code ?? 'GUTS_CORRUPT', message: `deep check of snapshot ${s.id}: ${p.message}`, snapshots: [s.id], paths: [] });
          report.snapshots[i].status = 'INVALID';
          report.status = 'INVALID';
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return report;
}

/** Writes every file of a snapshot into `dir` (db/, consensus/; files 0600, dirs 0700), each checked and fsynced. */
export async function extractSnapshot(loc: Location, m: SnapshotManifest, dir: string, opts: { parallel?: number; signal?: AbortSignal; onFile?: (bytes: number) => void } = {}): Promise<ExtractedBase> {
  for (const sub of new Set(m.files.map((f) => f.path.split('/')[0]))) fs.mkdirSync(path.join(dir, sub), { mode: 0o700, recursive: true });
  let stored = 0;
  await pool(m.files, readParallel(loc, opts.parallel), async (f) => {
    const out = path.join(dir, f.path);
    const r = await readObject(loc, f.object, { output: out, maxBytes: f.size, signal: opts.signal });
    try {
      checkObjectResult(loc, f, r);
    } catch (e) {
      fs.rmSync(out, { force: true });
      throw e;
    }
    if (f.mtime) fs.utimesSync(out, f.mtime, f.mtime);
    stored += r.storedBytes;
    opts.onFile?.(f.size);
  });
  for (const sub of new Set(m.files.map((f) => f.path.split('/')[0]))) fsyncDir(path.join(dir, sub));
  fsyncDir(dir);
  return { manifest: archiveManifestOf(m), format: 'repository', files: m.files.length, bytes: m.total_bytes, stored_bytes: stored };
}

/** The snapshot to restore, and the `extract` step restoreBackup runs on its staging dir. */
export async function repoRestoreSource(loc: Location, which: string | undefined, opts: { parallel?: number; signal?: AbortSignal } = {}): Promise<{ name: string; snapshot: SnapshotEntry; extract: (staging: string) => Promise<ExtractedBase> }> {
  await requireConfig(loc);
  const s = pickSnapshot(await loadSnapshots(loc), which, loc.url);
  return {
    name: `${loc.url.replace(/\/$/, '')}#${s.id}`,
    snapshot: s,
    extract: (staging) => extractSnapshot(loc, s.manifest, staging, opts),
  };
}

export interface RepoExportResult {
  repo: string;
  snapshot: string;
  file: string;
  size_bytes: number;
  sha256: string;
  files: number;
  total_bytes: number;
  duration_seconds: number;
}

/**
 * A snapshot as a normal single-file archive (same format, sidecar and
 * MANIFEST.json as `backup create --output`): the files are unpacked into a
 * private temp dir beside the output (checked), archived, and removed.
 */
export async function exportSnapshot(loc: Location, which: string, output: string, opts: { level?: number; threads?: number; force?: boolean; signal?: AbortSignal } = {}): Promise<RepoExportResult> {
  const t0 = Date.now();
  const file = path.resolve(output);
  const format = formatForPath(file);
  await requireConfig(loc);
  const s = pickSnapshot(await loadSnapshots(loc), which, loc.url);
  if (fs.existsSync(file) && !opts.force) throw new GutsError('GUTS_EXISTS', `${file} already exists (use --force to replace it)`, file);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.export-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { mode: 0o700 });
  try {
    await extractSnapshot(loc, s.manifest, tmp, { signal: opts.signal });
    const am = archiveManifestOf(s.manifest);
    const entries: ArchiveEntrySpec[] = [];
    for (const sub of ['db', 'consensus']) {
      const files = s.manifest.files.filter((f) => f.path.startsWith(sub + '/')).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      if (!files.length) continue;
      entries.push({ path: sub, source: path.join(tmp, sub), type: 'dir', mode: 0o700 });
      for (const f of files) entries.push({ path: f.path, source: path.join(tmp, f.path), type: 'file', mode: 0o600 });
    }
    const level = opts.level ?? 3;
    const base: Record<string, unknown> = { ...am };
    delete base.files;
    delete base.total_bytes;
    base.compression = format === 'tar' ? { format: 'none' } : { format: format === 'tar.zst' ? 'zstd' : 'gzip', level, frame_size: 8 << 20 };
    const task = native.createArchive({
      output: file,
      overwrite: Boolean(opts.force),
      sidecar: true,
      format,
      level,
      threads: opts.threads ?? Math.max(1, os.availableParallelism()),
      frameSize: 8 << 20,
      entries,
      manifestBase: JSON.stringify(base, null, 2),
    });
    const onAbort = () => task.cancel();
    opts.signal?.addEventListener('abort', onAbort);
    try {
      const r = await task.promise;
      return { repo: loc.url, snapshot: s.id, file, size_bytes: r.archiveBytes, sha256: r.sha256, files: s.manifest.files.length, total_bytes: s.manifest.total_bytes, duration_seconds: (Date.now() - t0) / 1000 };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
