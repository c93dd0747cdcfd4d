// What `--json` prints, per command: one naming scheme over the library's
// results (docs/JSON.md): snake_case keys, byte quantities in `*_bytes`,
// durations in `*_seconds`, `sha256` as lower-case hex, absolute paths,
// times ISO-8601 UTC, `cpu_share` in percent as on the command line. The
// library keeps its own field names (the daemon and tests use them); the
// renames live here, once. Fields a result gains later pass through, their
// keys snake_cased (test/json.test.ts checks every key of every command).
import * as path from 'node:path';

import type { BackupResult } from '../backup';
import type { BackupVerifyReport } from '../backup-verify';
import type { StatusReport } from '../daemon/status';
import type { ExportResult, ImportResult } from '../git';
import type { LastBackup } from '../metrics';
import type { RestoreReport } from '../restore';
import type { SeedResult } from '../seed';
import type { VerifyReport } from '../verify';

type Json = Record<string, unknown>;

/** camelCase → snake_case (already snake_case keys are left as they are). */
export function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/-/g, '_').toLowerCase();
}

/** Every key of `value`, deep, snake_cased. Outputs hold no keys taken from user data. */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [snakeCase(k), snakeKeys(v)]));
  }
  return value;
}

/** "sha256:ABC…" / "SHA256:abc…" → "abc…" */
export function sha256Hex(checksum: string | undefined | null): string | null {
  return checksum ? checksum.replace(/^sha256:/i, '').toLowerCase() : null;
}

const seconds = (ms: number) => Math.round(ms) / 1000;
const round3 = (s: number) => Math.round(s * 1000) / 1000;

/** `obj` with `first` keys first, in that order (the order docs/JSON.md shows), then the rest. */
function ordered(obj: Json, first: string[]): Json {
  const out: Json = {};
  for (const k of first) if (k in obj) out[k] = obj[k];
  for (const [k, v] of Object.entries(obj)) if (!(k in out)) out[k] = v;
  return out;
}

function without<T extends object>(obj: T, ...keys: string[]): Json {
  const out: Json = { ...(obj as Json) };
  for (const k of keys) delete out[k];
  return out;
}

function consensusJson(c: { blocks: number; finalizedHeight: number } | null | undefined): Json | null {
  return c ? { blocks: c.blocks, finalized_height: c.finalizedHeight } : null;
}

export function backupRecordJson(r: LastBackup | null): Json | null {
  return r ? { file: r.file, kind: r.kind, created: r.created, size_bytes: r.size_bytes, sha256: sha256Hex(r.checksum) } : null;
}

export function backupCreateJson(r: BackupResult): Json {
  return ordered(snakeKeys({
    ...without(r, 'checksum', 'duration_s', 'levels', 'cpu_share', 'source', 'manifest'),
    file: r.file,
    sidecar_file: `${r.file}.sha256`,
    // where the checkpoint came from: the running node or the store opened here
    via: r.source,
    sha256: sha256Hex(r.checksum),
    duration_seconds: r.duration_s,
    // in percent, as --cpu-share takes it (100 = not paced)
    cpu_share: Math.round(r.cpu_share * 100),
    // zstd frames stored in raw blocks (chunks that do not compress)
    raw_frames: r.levels.raw ?? 0,
  }) as Json, ['file', 'sidecar_file', 'sha256', 'format', 'kind', 'created', 'size_bytes', 'total_bytes', 'files', 'frames', 'raw_frames', 'objects', 'repositories', 'via', 'priority', 'cpu_share', 'replaced_existing', 'duration_seconds']);
}

export function backupVerifyJson(r: BackupVerifyReport): Json {
  return ordered(snakeKeys({
    ...without(r, 'path', 'checksum', 'elapsed_ms'),
    file: r.path,
    sha256: sha256Hex(r.checksum),
    elapsed_seconds: seconds(r.elapsed_ms),
  }) as Json, ['status', 'file', 'format', 'kind', 'created', 'size_bytes', 'total_bytes', 'sha256', 'sidecar', 'files', 'objects', 'repositories', 'problems', 'deep', 'elapsed_seconds']);
}

export function restoreJson(r: RestoreReport): Json {
  return ordered(snakeKeys({
    ...without(r, 'bytes', 'elapsed_ms'),
    file: path.resolve(r.file),
    target: path.resolve(r.target),
    total_bytes: r.bytes,
    elapsed_seconds: seconds(r.elapsed_ms),
  }) as Json, ['file', 'target', 'format', 'kind', 'created', 'files', 'total_bytes', 'archive_bytes', 'objects', 'repositories', 'verified', 'replaced_existing', 'key_to', 'config_to', 'removed_leftovers', 'elapsed_seconds']);
}

export function verifyJson(r: VerifyReport): Json {
  return ordered(snakeKeys({
    ...without(r, 'dataDir', 'bytes', 'consensus', 'durationS'),
    data_dir: path.resolve(r.dataDir),
    // object bytes re-hashed (--full), else the SST bytes checksummed
    checked_bytes: r.bytes,
    consensus: consensusJson(r.consensus),
    duration_seconds: round3(r.durationS),
  }) as Json, ['ok', 'data_dir', 'full', 'threads', 'objects', 'checked_bytes', 'counts', 'stored', 'refs', 'sst_files', 'sst_bytes', 'consensus', 'has_object_store', 'problems', 'affected', 'duration_seconds']);
}

export function statusJson(r: StatusReport): Json {
  return ordered(snakeKeys({
    ...without(r, 'dataDir', 'sizes', 'consensus', 'lastBackup', 'lastConsensusBackup', 'source'),
    data_dir: path.resolve(r.dataDir),
    // where the counts come from: the running node, a read-only open of the store, or nowhere
    via: r.source,
    store_bytes: r.sizes,
    consensus: consensusJson(r.consensus),
    last_backup: backupRecordJson(r.lastBackup),
    last_consensus_backup: backupRecordJson(r.lastConsensusBackup),
  }) as Json, ['data_dir', 'running', 'via', 'pid', 'api_addr', 'version', 'started_at', 'maintenance', 'store_bytes', 'counts', 'consensus', 'checkpoints', 'last_backup', 'last_consensus_backup', 'notes']);
}

export function importJson(r: ImportResult, source: string, via: string, dataDir: string): Json {
  return ordered(snakeKeys({
    ...without(r, 'bytes', 'durationS'),
    git_repo: path.resolve(source),
    object_bytes: r.bytes,
    duration_seconds: round3(r.durationS),
    via,
    data_dir: path.resolve(dataDir),
  }) as Json, ['repo', 'git_repo', 'objects', 'added', 'object_bytes', 'counts', 'refs', 'head', 'via', 'data_dir', 'duration_seconds']);
}

export function exportJson(r: ExportResult): Json {
  // HEAD as import reports it: the ref name (symbolic) or the commit id (detached), not git's "ref: " line
  const head = r.head === null ? null : r.head.replace(/^ref: /, '');
  return ordered(snakeKeys({ ...without(r, 'durationS'), dir: path.resolve(r.dir), head, duration_seconds: round3(r.durationS) }) as Json, ['repo', 'dir', 'objects', 'refs', 'pack_bytes', 'head', 'duration_seconds']);
}

export function seedJson(r: SeedResult, via: string, dataDir: string): Json {
  return ordered(snakeKeys({
    ...without(r, 'bytes', 'durationS', 'mbPerS'),
    object_bytes: r.bytes,
    duration_seconds: round3(r.durationS),
    bytes_per_second: Math.round(r.bytes / Math.max(r.durationS, 1e-9)),
    via,
    data_dir: path.resolve(dataDir),
  }) as Json, ['seed', 'data_dir', 'via', 'object_bytes', 'objects', 'added', 'counts', 'repositories', 'repos', 'commits', 'blocks', 'finalized_height', 'duration_seconds', 'bytes_per_second']);
}

export function maintenanceEnterJson(pid: number, r: { until: string; alreadyActive?: boolean; flushMs?: number }): Json {
  return {
    maintenance: true,
    pid,
    until: r.until,
    already_active: Boolean(r.alreadyActive),
    flush_seconds: r.flushMs !== undefined ? seconds(r.flushMs) : null,
  };
}

export function maintenanceExitJson(pid: number, r: { wasActive: boolean }): Json {
  return { maintenance: false, pid, was_active: r.wasActive };
}

export function compactJson(r: import('../compact').CompactResult): Json {
  const sst = (s: import('../native').SstSummary) => ({ files: s.files, sst_bytes: s.bytes, compression_bytes: s.compression });
  return {
    data_dir: path.resolve(r.dataDir),
    via: r.via,
    before: sst(r.before),
    after: sst(r.after),
    // after / before SST bytes
    ratio: r.before.bytes ? Math.round((r.after.bytes / r.before.bytes) * 1000) / 1000 : null,
    column_families: r.columnFamilies,
    duration_seconds: round3(r.durationS),
  };
}
