// Reading guts backup archives (docs/FORMAT.md): the native reader enforces
// the stream rules (GUTS-INDEX first, sizes, unsafe entries, XXH3 per file);
// this module parses MANIFEST.json and cross-checks it against the index and
// the data actually read. Shared by `backup verify` and `backup restore`.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { checkLayout, checkManifestFields, layoutPatterns } from './archive-layout';
import { GutsError, fsError } from './errors';
import { ArchiveProblem, native, ReadArchiveOptions, ReadArchiveResult, TaskHandle } from './native';

export const INDEX_NAME = 'GUTS-INDEX';
export const MANIFEST_NAME = 'MANIFEST.json';
export const KEY_ENTRY = 'keys/node.key';
export const CONFIG_ENTRY = 'config/config.yaml';

export type BackupKind = 'full' | 'hot' | 'consensus-only';

export interface ManifestFile {
  path: string;
  size: number;
  mode: number;
  mtime: number;
  xxh3: string;
}

export interface ObjectCounts {
  commit: number;
  tree: number;
  blob: number;
  tag: number;
}

export interface Manifest {
  format: 'guts-backup';
  format_version: number;
  tool?: string;
  created: string;
  kind: BackupKind;
  source_data_dir?: string;
  hostname?: string;
  rocksdb?: Record<string, unknown>;
  objects: ObjectCounts;
  repositories: number;
  consensus?: { blocks?: number; finalized_height?: number };
  compression?: Record<string, unknown>;
  files: ManifestFile[];
  total_bytes: number;
}

export interface IndexLine {
  path: string;
  size: number;
  mode: number;
}

/** GUTS-INDEX text (already validated natively) -> lines. */
export function parseIndex(text: string): IndexLine[] {
  const lines = text.split('\n');
  const out: IndexLine[] = [];
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const m = /^(\d+) ([0-7]+) (.+)$/.exec(line);
    if (!m) continue;
    out.push({ path: m[3], size: Number(m[1]), mode: parseInt(m[2], 8) & 0o7777 });
  }
  return out;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const FILE_KEYS = ['path', 'size', 'mode', 'mtime', 'xxh3'];

/** MANIFEST.json text -> manifest, or the problems that make it unusable. */
export function parseManifest(text: string): { manifest: Manifest | null; problems: ArchiveProblem[] } {
  const problems: ArchiveProblem[] = [];
  const bad = (message: string) => problems.push({ path: MANIFEST_NAME, code: 'GUTS_CORRUPT', message });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    bad(`invalid JSON: ${(e as Error).message}`);
    return { manifest: null, problems };
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    bad('not a JSON object');
    return { manifest: null, problems };
  }
  const m = raw as Record<string, unknown>;
  for (const why of checkManifestFields(m)) bad(why);
  if (!Array.isArray(m.files)) return { manifest: null, problems };
  let sum = 0;
  const seen = new Set<string>();
  m.files.forEach((f: unknown, i: number) => {
    const e = f as Record<string, unknown>;
    const where = typeof e?.path === 'string' ? e.path : `files[${i}]`;
    if (
      !e ||
      typeof e !== 'object' ||
      Object.keys(e).some((k) => !FILE_KEYS.includes(k)) ||
      typeof e.path !== 'string' ||
      !isCount(e.size) ||
      !isCount(e.mode) ||
      e.mode > 0o7777 ||
      !Number.isSafeInteger(e.mtime) ||
      typeof e.xxh3 !== 'string' ||
      !/^[0-9a-f]{32}$/.test(e.xxh3)
    ) {
      problems.push({ path: MANIFEST_NAME, code: 'GUTS_CORRUPT', message: `files entry for ${where} is malformed` });
      return;
    }
    if (seen.has(e.path)) problems.push({ path: e.path, code: 'GUTS_CORRUPT', message: 'listed twice in MANIFEST.json' });
    seen.add(e.path);
    sum += e.size;
  });
  if (isCount(m.total_bytes) && m.total_bytes !== sum) bad(`total_bytes ${m.total_bytes} differs from the sum of file sizes ${sum}`);
  return { manifest: problems.length ? null : (m as unknown as Manifest), problems };
}

/**
 * Every problem of an archive read: the native ones plus manifest validity,
 * manifest/index agreement and each file's size and XXH3-128 against the
 * manifest. The manifest is returned when it parsed (even if other checks failed).
 */
export function checkArchive(r: ReadArchiveResult): { manifest: Manifest | null; problems: ArchiveProblem[] } {
  const problems = [...r.problems];
  const named = new Set(problems.map((p) => p.path));
  if (r.manifest === null) {
    // Without an index the reader stopped early: the manifest was never reached.
    if (!named.has(MANIFEST_NAME) && r.index !== null) problems.push({ path: MANIFEST_NAME, code: 'GUTS_CORRUPT', message: 'missing or unreadable' });
    return { manifest: null, problems };
  }
  const parsed = parseManifest(r.manifest);
  let manifest = parsed.manifest;
  problems.push(...parsed.problems);
  if (!manifest) {
    // keep what can be shown (created, counts) even when the file list is unusable
    try {
      manifest = JSON.parse(r.manifest) as Manifest;
      if (!manifest || typeof manifest !== 'object') manifest = null;
    } catch {
      manifest = null;
    }
    return { manifest, problems };
  }
  if (r.index !== null) {
    const index = parseIndex(r.index);
    const byPath = new Map(index.map((l) => [l.path, l]));
    const inManifest = new Set(manifest.files.map((f) => f.path));
    manifest.files.forEach((f, i) => {
      const l = byPath.get(f.path);
      if (!l) problems.push({ path: f.path, code: 'GUTS_CORRUPT', message: 'listed in MANIFEST.json but not in GUTS-INDEX' });
      else if (l.size !== f.size || l.mode !== (f.mode & 0o7777))
        problems.push({ path: f.path, code: 'GUTS_CORRUPT', message: `MANIFEST.json (${f.size} bytes, mode ${f.mode.toString(8)}) and GUTS-INDEX (${l.size} bytes, mode ${l.mode.toString(8)}) disagree` });
      else if (index[i]?.path !== f.path)
        problems.push({ path: f.path, code: 'GUTS_CORRUPT', message: `MANIFEST.json and GUTS-INDEX list files in a different order (position ${i + 1})` });
    });
    for (const l of index) if (!inManifest.has(l.path)) problems.push({ path: l.path, code: 'GUTS_CORRUPT', message: 'listed in GUTS-INDEX but not in MANIFEST.json' });
  }
  // The reader refused what is in no kind's layout; what this kind may and must hold is known only now.
  const named2 = new Set(problems.map((p) => p.path));
  for (const p of checkLayout(manifest.kind, r.entries)) if (!named2.has(p.path)) problems.push(p);
  const entries = new Map(r.entries.filter((e) => e.type === 'file').map((e) => [e.path, e]));
  for (const f of manifest.files) {
    const e = entries.get(f.path);
    if (!e || e.damaged) continue; // missing / damaged: already reported by the reader
    if (e.size !== f.size) problems.push({ path: f.path, code: 'GUTS_CORRUPT', message: `size ${e.size} differs from ${f.size} in MANIFEST.json` });
    else if (e.xxh3 !== f.xxh3) problems.push({ path: f.path, code: 'GUTS_CORRUPT', message: `XXH3-128 mismatch: data hashes to ${e.xxh3}, MANIFEST.json says ${f.xxh3}` });
  }
  return { manifest, problems };
}

/** Runs the native reader (held to the backup layout unless `layout` says otherwise); `onTask` gets the handle (progress bar, cancel). */
export async function readArchive(options: ReadArchiveOptions, onTask?: (h: TaskHandle<ReadArchiveResult>) => void): Promise<ReadArchiveResult> {
  const h = native.readArchive({ layout: layoutPatterns(), ...options });
  onTask?.(h);
  return h.promise;
}

export interface Sidecar {
  file: string;
  sha256: string | null;
  problem?: string;
}

/** FILE.sha256 ("<hex>  <name>\n"), or null when there is none. */
export function readSidecar(archive: string): Sidecar | null {
  const file = archive + '.sha256';
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fsError(e, 'cannot read', file);
  }
  const m = /^([0-9a-fA-F]{64})[ \t]+\*?(.+)$/m.exec(text);
  if (!m) return { file, sha256: null, problem: `${path.basename(file)} is not "<sha256>  <name>"` };
  return { file, sha256: m[1].toLowerCase() };
}

/**
 * The error for a file the reader found not to be a backup at all
 * (GUTS_NOT_ARCHIVE, exit 2) - unless its sidecar names other bytes: then a
 * backup was written under this name and this is what is left of it
 * (GUTS_CORRUPT, exit 1; e.g. truncated to nothing).
 */
export function notArchiveError(file: string, reason: string, sidecar: Sidecar | null, sha256: string | undefined): GutsError {
  if (sidecar?.sha256 && sha256 && sidecar.sha256 !== sha256) {
    return new GutsError('GUTS_CORRUPT', `SHA-256 of ${file} is ${sha256}, ${path.basename(sidecar.file)} says ${sidecar.sha256}; it no longer reads as a backup (${reason})`, file);
  }
  return new GutsError('GUTS_NOT_ARCHIVE', `${file} is not a guts-node backup archive: ${reason}`, file);
}

/** The stat of an archive that must exist and be a regular file. */
export function statArchive(file: string): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw fsError(e, 'cannot read backup file', file);
  }
  if (!st.isFile()) throw new GutsError('GUTS_INVALID_ARGUMENT', `backup file ${file} is not a regular file`, file);
  return st;
}
