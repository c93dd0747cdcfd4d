// `backup verify`: one read of the whole archive (sidecar SHA-256 on the same
// pass, every byte decompressed, every file's size and XXH3-128 against
// MANIFEST.json, index/manifest agreement, missing / extra / duplicate
// entries). --deep also extracts to a temp dir and runs the full object check
// of the extracted checkpoint, whose counts must equal the manifest's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { checkArchive, CONFIG_ENTRY, KEY_ENTRY, Manifest, notArchiveError, ObjectCounts, readArchive, readSidecar, statArchive } from './archive';
import { escapeControls, GutsError } from './errors';
import type { ArchiveSource } from './location/backup-stream';
import { ArchiveProblem, Counts, ReadArchiveResult, TaskHandle } from './native';
import { formatBytes, groupDigits } from './progress';

export interface VerifyBackupOptions {
  file: string;
  /** read the archive from here (an S3 object, streamed) instead of the file `file` */
  source?: ArchiveSource;
  deep?: boolean;
  threads?: number;
  /** gets each long-running native task (progress bar, cancel) */
  onTask?: (h: TaskHandle<unknown>, label: string) => void;
}

export interface BackupVerifyReport {
  /** basename of the archive */
  file: string;
  path: string;
  format: string;
  created: string | null;
  kind: string | null;
  size_bytes: number;
  checksum: string;
  sidecar: 'ok' | 'mismatch' | 'missing' | 'invalid';
  objects: ObjectCounts | null;
  repositories: number | null;
  files: number;
  total_bytes: number | null;
  /** keys/node.key is in the archive: whoever holds the file can act as the node */
  contains_private_key: boolean;
  /** config/config.yaml is in the archive */
  contains_config: boolean;
  /** MANIFEST.json `wal`: the WAL position the base backup contains (null without WAL archiving) */
  wal: { timeline: number; segment: number; db_seq: number | null; consensus_seq: number | null } | null;
  status: 'VALID' | 'INVALID';
  problems: ArchiveProblem[];
  /** --deep: what the object check of the extracted store covered */
  deep?: { checked: boolean; counts?: Counts; objects_rehashed?: number; bytes_rehashed?: number; refs_checked?: number | null; note?: string };
  elapsed_ms: number;
}

/** Result of the full object check (src/verify.ts, verifyDataDir(dir, {full: true})). */
export interface DataDirCheck {
  ok: boolean;
  counts: Counts;
  problems: string[];
  /** objects re-hashed, their bytes, refs checked against objects */
  objects?: number;
  bytes?: number;
  refs?: number | null;
}
type VerifyDataDir = (dir: string, opts: { full: boolean; threads?: number }) => Promise<DataDirCheck>;

/** The object verifier, loaded lazily (it lives in src/verify.ts); null when this build has none. */
export async function loadVerifyDataDir(): Promise<VerifyDataDir | null> {
  const mod: string = './verify';
  try {
    const m = (await import(mod)) as { verifyDataDir?: unknown };
    return typeof m.verifyDataDir === 'function' ? (m.verifyDataDir as VerifyDataDir) : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' || (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return null;
    throw e;
  }
}

/** Runs the full object check on an extracted data dir and compares its counts with the manifest. */
export async function checkExtractedObjects(dir: string, manifest: Manifest, threads?: number): Promise<{ counts: Counts; problems: ArchiveProblem[]; check: DataDirCheck }> {
  const verifyDataDir = await loadVerifyDataDir();
  if (!verifyDataDir) throw new GutsError('GUTS_INTERNAL', 'the full object check (verifyDataDir) is not available in this build');
  const r = await verifyDataDir(dir, { full: true, threads });
  const problems: ArchiveProblem[] = r.problems.map((message) => ({ path: 'objects', code: 'GUTS_CORRUPT', message }));
  for (const k of ['commit', 'tree', 'blob', 'tag'] as const) {
    if (r.counts[k] !== manifest.objects[k])
      problems.push({ path: 'objects', code: 'GUTS_CORRUPT', message: `MISMATCH ${k} count: extracted store has ${r.counts[k]}, MANIFEST.json says ${manifest.objects[k]}` });
  }
  if (r.counts.repositories !== manifest.repositories)
    problems.push({ path: 'objects', code: 'GUTS_CORRUPT', message: `MISMATCH repositories: extracted store has ${r.counts.repositories}, MANIFEST.json says ${manifest.repositories}` });
  if (!r.ok && problems.length === 0) problems.push({ path: 'objects', code: 'GUTS_CORRUPT', message: 'the full object check failed' });
  return { counts: r.counts, problems, check: r };
}

function tempDirFor(file: string): string {
  for (const parent of [path.dirname(file), os.tmpdir()]) {
    try {
      return fs.mkdtempSync(path.join(parent, '.guts-verify-'));
    } catch {
      /* not writable: next candidate */
    }
  }
  throw new GutsError('GUTS_PERMISSION', `cannot create a temp dir beside ${file} or in ${os.tmpdir()}`);
}

export async function verifyBackup(opts: VerifyBackupOptions): Promise<BackupVerifyReport> {
  const t0 = Date.now();
  const src = opts.source;
  const file = src ? src.url : path.resolve(opts.file);
  if (!src) statArchive(file);
  const sidecar = src ? src.sidecar : readSidecar(file);
  const tmp = opts.deep ? tempDirFor(src ? path.join(os.tmpdir(), 'x') : file) : undefined;
  try {
    let r: ReadArchiveResult;
    const options = { path: file, threads: opts.threads, sha256: true, skipFrameChecksums: Boolean(sidecar?.sha256), extractTo: tmp, inMemory: [KEY_ENTRY, CONFIG_ENTRY] };
    const onTask = (h: TaskHandle<ReadArchiveResult>) => opts.onTask?.(h, 'verify');
    r = src ? await src.read((input) => readArchive({ ...options, ...input }, onTask)) : await readArchive(options, onTask);
    const notArchive = r.problems.find((p) => p.code === 'GUTS_NOT_ARCHIVE');
    if (notArchive) {
      const e = notArchiveError(file, notArchive.message, sidecar, r.sha256);
      if (e.code === 'GUTS_NOT_ARCHIVE') throw e;
      // the sidecar says a backup was written here: report what is left of it as damaged
      notArchive.code = 'GUTS_CORRUPT';
      notArchive.message = `not readable as a backup: ${notArchive.message}`;
    }
    const { manifest, problems } = checkArchive(r);
    let sidecarState: BackupVerifyReport['sidecar'] = 'missing';
    if (sidecar) {
      const name = path.basename(sidecar.file);
      if (!sidecar.sha256) {
        sidecarState = 'invalid';
        problems.push({ path: name, code: 'GUTS_CORRUPT', message: sidecar.problem ?? 'malformed' });
      } else if (sidecar.sha256 !== r.sha256) {
        sidecarState = 'mismatch';
        problems.push({ path: name, code: 'GUTS_CORRUPT', message: `SHA-256 of the archive is ${r.sha256}, ${name} says ${sidecar.sha256}` });
      } else {
        sidecarState = 'ok';
      }
    }
    let deep: BackupVerifyReport['deep'];
    if (tmp) {
      if (problems.length || !manifest) deep = { checked: false, note: 'skipped: the archive itself is invalid' };
      else if (manifest.kind === 'consensus-only') deep = { checked: false, note: 'skipped: consensus-only archive holds no objects' };
      else {
        const c = await checkExtractedObjects(tmp, manifest, opts.threads);
        problems.push(...c.problems);
        deep = { checked: true, counts: c.counts, objects_rehashed: c.check.objects ?? 0, bytes_rehashed: c.check.bytes ?? 0, refs_checked: c.check.refs ?? null };
      }
    }
    const valid = problems.length === 0;
    return {
      file: path.basename(file),
      path: file,
      format: r.format,
      created: typeof manifest?.created === 'string' ? manifest.created : null,
      kind: typeof manifest?.kind === 'string' ? manifest.kind : null,
      size_bytes: r.archiveBytes,
      checksum: `SHA256:${r.sha256}`,
      sidecar: sidecarState,
      objects: manifest?.objects && typeof manifest.objects === 'object' ? manifest.objects : null,
      repositories: typeof manifest?.repositories === 'number' ? manifest.repositories : null,
      files: r.entries.filter((e) => e.type === 'file').length,
      total_bytes: typeof manifest?.total_bytes === 'number' ? manifest.total_bytes : null,
      contains_private_key: r.entries.some((e) => e.type === 'file' && e.path === KEY_ENTRY),
      contains_config: r.entries.some((e) => e.type === 'file' && e.path === CONFIG_ENTRY),
      wal: manifestWal(manifest),
      status: valid ? 'VALID' : 'INVALID',
      problems,
      ...(deep ? { deep } : {}),
      elapsed_ms: Date.now() - t0,
    };
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const n = (v: number) => groupDigits(v);

function manifestWal(m: Manifest | null | undefined): BackupVerifyReport['wal'] {
  const w = m?.wal;
  const seq = (v: unknown) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : null);
  if (!w || typeof w !== 'object' || !Number.isSafeInteger(w.timeline) || !Number.isSafeInteger(w.segment)) return null;
  return { timeline: w.timeline, segment: w.segment, db_seq: seq(w.db_seq), consensus_seq: seq(w.consensus_seq) };
}

/** "50,000 blobs, 10,000 trees, 5,000 commits" (+ ", N tags" when there are tags). */
export function formatObjects(o: ObjectCounts | null): string {
  if (!o) return 'unknown';
  const parts = [`${n(o.blob)} blobs`, `${n(o.tree)} trees`, `${n(o.commit)} commits`];
  if (o.tag > 0) parts.push(`${n(o.tag)} tags`);
  return parts.join(', ');
}

function problemLine(p: ArchiveProblem, archive: string): string {
  // lines of the object check already start with their kind and name the object
  if (/^(CORRUPT|MISMATCH|ERROR) /.test(p.message)) return p.message;
  const what = p.code === 'GUTS_CORRUPT' ? 'CORRUPT ' : p.code === 'GUTS_UNSAFE_PATH' ? 'UNSAFE ' : 'ERROR ';
  return `${what}${p.path || archive}: ${p.message}`;
}

/** "Deep: re-hashed N objects ..." or why the deep check did not run. */
function deepLine(d: NonNullable<BackupVerifyReport['deep']>): string {
  if (!d.checked) return `Deep: not run (${(d.note ?? 'skipped').replace(/^skipped: /, '')})`;
  const refs = d.refs_checked === null || d.refs_checked === undefined ? 'checked refs' : `checked ${n(d.refs_checked)} refs`;
  return `Deep: re-hashed ${n(d.objects_rehashed ?? 0)} objects (${formatBytes(d.bytes_rehashed ?? 0)}) in db/, recounted types and repositories against MANIFEST.json, ${refs} against objects`;
}

/** The guide's block: Backup file / Created / Size / Checksum / Objects / Repositories / Status (+ problems). */
export function formatVerifyReport(r: BackupVerifyReport): string {
  const lines = [
    `Backup file: ${r.file}`,
    `Created: ${r.created ?? 'unknown'}`,
    `Size: ${formatBytes(r.size_bytes)}`,
    `Checksum: ${r.checksum}`,
    `Objects: ${formatObjects(r.objects)}`,
    `Repositories: ${r.repositories === null ? 'unknown' : n(r.repositories)}`,
  ];
  // The key gives whoever holds the file the node's identity: say so where the operator looks.
  if (r.contains_private_key) lines.push('Private key: included (keys/node.key; keep this file as secret as the key)');
  if (r.deep) lines.push(deepLine(r.deep));
  if (r.wal) lines.push(`WAL: timeline ${r.wal.timeline}, segment ${r.wal.segment}, db seq ${r.wal.db_seq ?? 'none'}, consensus seq ${r.wal.consensus_seq ?? 'none'}`);
  lines.push(`Status: ${r.status}`);
  for (const p of r.problems) lines.push(problemLine(p, r.file));
  // Names in the report come from the archive: no control character reaches the terminal.
  return lines.map(escapeControls).join('\n') + '\n';
}
