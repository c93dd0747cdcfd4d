// Prometheus text exposition of the node's figures, and the last-backup records
// (<data_dir>/last-backup.json, one per kind, written by `backup create` or by
// the node on recordBackup) that feed the guide's alert
//   time() - guts_last_backup_timestamp > 86400
import * as fs from 'node:fs';

import { writeFileAtomic, writeFileAtomicAsync } from './fsutil';
import { Counts } from './native';
import { dataDirLayout } from './store';
import type { WalStatus } from './wal/archiver';

export interface LastBackup {
  file: string;
  size_bytes: number;
  /** ISO 8601 UTC */
  created: string;
  kind: string;
  checksum?: string;
}

/**
 * <dataDir>/last-backup.json: the last successful backup of each kind,
 * `{"full": {...}, "hot": {...}, "consensus_only": {...}}` (each slot optional).
 * Kept per kind so that the hourly consensus-only backups of the guide do not
 * hide a missing full backup: the unlabelled guts_last_backup_timestamp is the
 * newest full or hot one, consensus-only ones have their own series.
 */
export type BackupRecords = Partial<Record<BackupSlot, LastBackup>>;
export type BackupSlot = 'full' | 'hot' | 'consensus_only';

/** The record slot of a backup kind ("consensus-only" -> consensus_only; anything unknown counts as full). */
export function backupSlot(kind: string): BackupSlot {
  return kind === 'consensus-only' ? 'consensus_only' : kind === 'hot' ? 'hot' : 'full';
}

function parseRecord(v: unknown): LastBackup | null {
  const r = v as Partial<LastBackup> | null;
  if (!r || typeof r !== 'object') return null;
  if (typeof r.file !== 'string' || typeof r.size_bytes !== 'number' || typeof r.created !== 'string' || Number.isNaN(Date.parse(r.created))) return null;
  return { file: r.file, size_bytes: r.size_bytes, created: r.created, kind: String(r.kind ?? 'full'), ...(r.checksum ? { checksum: String(r.checksum) } : {}) };
}

/** Every recorded kind (unreadable or invalid records are left out). Reads the older one-record file too. */
export function readBackupRecords(dataDir: string): BackupRecords {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(fs.readFileSync(dataDirLayout(dataDir).lastBackup, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
  if (!v || typeof v !== 'object') return {};
  if (typeof v.file === 'string') {
    // before per-kind records: one record, of whatever kind it says
    const one = parseRecord(v);
    return one ? { [backupSlot(one.kind)]: one } : {};
  }
  const out: BackupRecords = {};
  for (const slot of ['full', 'hot', 'consensus_only'] as const) {
    const r = parseRecord(v[slot]);
    if (r) out[slot] = r;
  }
  return out;
}

/** The newest full or hot backup: what the unlabelled guts_last_backup_timestamp and "Last backup" mean. */
export function lastFullBackup(records: BackupRecords): LastBackup | null {
  const c = [records.full, records.hot].filter((r): r is LastBackup => Boolean(r));
  c.sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
  return c[0] ?? null;
}

/** The newest full or hot backup record, or null when there is none. */
export function readLastBackup(dataDir: string): LastBackup | null {
  return lastFullBackup(readBackupRecords(dataDir));
}

function withRecord(dataDir: string, info: LastBackup): string {
  const records = { ...readBackupRecords(dataDir), [backupSlot(info.kind)]: info };
  return JSON.stringify(records, null, 2) + '\n';
}

/** Records a backup in <dataDir>/last-backup.json (its kind's slot; the others are kept). */
export function writeLastBackup(dataDir: string, info: LastBackup): void {
  writeFileAtomic(dataDirLayout(dataDir).lastBackup, withRecord(dataDir, info), 0o600);
}

/** writeLastBackup off the event loop (the node; its callers serialize the calls). */
export function writeLastBackupAsync(dataDir: string, info: LastBackup): Promise<void> {
  return writeFileAtomicAsync(dataDirLayout(dataDir).lastBackup, withRecord(dataDir, info), 0o600);
}

/** node_exporter textfile-collector file (config metrics.textfile), written off the event loop. */
export function writeBackupTextfileAsync(file: string, records: BackupRecords): Promise<void> {
  const text = renderMetrics(
    { lastBackup: lastFullBackup(records), consensusBackup: records.consensus_only ?? null },
    { only: ['guts_last_backup_timestamp', 'guts_backup_size_bytes'] },
  );
  return writeFileAtomicAsync(file, text, 0o644);
}

export interface MetricsSnapshot {
  up?: boolean;
  ready?: boolean;
  counts?: Counts | null;
  consensus?: { blocks: number; finalizedHeight: number } | null;
  storeBytes?: { db: number; consensus: number; checkpoints: number };
  /** the newest full or hot backup: the unlabelled backup series */
  lastBackup?: LastBackup | null;
  /** the last consensus-only backup: the {kind="consensus-only"} series (left out when none) */
  consensusBackup?: LastBackup | null;
  maintenance?: boolean;
  checkpointsActive?: number;
  checkpointsTotal?: number;
  lastCheckpoint?: { createdMs: number } | null;
  writesInFlight?: number;
  httpRequests?: Map<string, number>;
  startedAt?: number;
  /** present when WAL archiving is on */
  wal?: WalStatus;
}

interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  samples: Array<{ labels?: Record<string, string>; value: number }>;
}

export function renderMetrics(s: MetricsSnapshot, opts: { only?: string[] } = {}): string {
  const fams: Family[] = [];
  const g = (name: string, help: string, samples: Family['samples'], type: Family['type'] = 'gauge') => {
    if (!opts.only || opts.only.includes(name)) fams.push({ name, type, help, samples });
  };
  if (s.up !== undefined) g('guts_up', 'Whether the node is up and its store open (1) or not (0).', [{ value: s.up ? 1 : 0 }]);
  if (s.counts) {
    g(
      'guts_objects',
      'Git objects in the store, by type.',
      (['commit', 'tree', 'blob', 'tag'] as const).map((type) => ({ labels: { type }, value: s.counts![type] })),
    );
    g('guts_repositories', 'Repositories in the store.', [{ value: s.counts.repositories }]);
  }
  if (s.consensus) {
    g('guts_consensus_blocks', 'Consensus blocks stored.', [{ value: s.consensus.blocks }]);
    g('guts_consensus_finalized_height', 'Finalized consensus height.', [{ value: s.consensus.finalizedHeight }]);
  }
  if (s.storeBytes) {
    g(
      'guts_store_bytes',
      'Bytes on disk per store directory.',
      (['db', 'consensus', 'checkpoints'] as const).map((store) => ({ labels: { store }, value: s.storeBytes![store] })),
    );
  }
  if (s.lastBackup !== undefined || opts.only) {
    const b = s.lastBackup;
    const c = s.consensusBackup;
    // Unlabelled: the last full or hot backup, 0 when there never was one (the
    // "backup missing" alert then fires, as it should). Consensus-only backups
    // have their own series, so hourly ones cannot keep that alert quiet.
    const ts = (r: LastBackup) => Math.floor(Date.parse(r.created) / 1000);
    const kindLabel = { kind: 'consensus-only' };
    g('guts_last_backup_timestamp', 'Unix time of the last successful full or hot backup (0 = none recorded); kind="consensus-only": of the last consensus-only backup.', [
      { value: b ? ts(b) : 0 },
      ...(c ? [{ labels: kindLabel, value: ts(c) }] : []),
    ]);
    g('guts_backup_size_bytes', 'Size of the last successful full or hot backup archive; kind="consensus-only": of the last consensus-only one.', [
      { value: b ? b.size_bytes : 0 },
      ...(c ? [{ labels: kindLabel, value: c.size_bytes }] : []),
    ]);
  }
  if (s.maintenance !== undefined) g('guts_maintenance', 'Whether the node is in maintenance mode (writes paused).', [{ value: s.maintenance ? 1 : 0 }]);
  if (s.checkpointsActive !== undefined) g('guts_checkpoints_active', 'Hot-backup checkpoints currently held.', [{ value: s.checkpointsActive }]);
  if (s.checkpointsTotal !== undefined) g('guts_checkpoints_created_total', 'Hot-backup checkpoints created since start.', [{ value: s.checkpointsTotal }], 'counter');
  if (s.lastCheckpoint) {
    g('guts_checkpoint_duration_seconds', 'Time the last checkpoint took (memtable flush, hard links, reading its counts).', [{ value: s.lastCheckpoint.createdMs / 1000 }]);
  }
  if (s.writesInFlight !== undefined) g('guts_writes_in_flight', 'Store writes in progress.', [{ value: s.writesInFlight }]);
  if (s.httpRequests) {
    g(
      'guts_http_requests_total',
      'HTTP requests served, by status code.',
      [...s.httpRequests.entries()].sort().map(([code, value]) => ({ labels: { code }, value })),
      'counter',
    );
  }
  if (s.wal) {
    const w = s.wal;
    g('guts_wal_archived_segments_total', 'WAL segments the archive command (or archive dir) accepted.', [{ value: w.archived_segments_total }], 'counter');
    g('guts_wal_archive_failures_total', 'Failed WAL archive attempts (each retried with backoff).', [{ value: w.archive_failures_total }], 'counter');
    g('guts_wal_pending_segments', 'Closed WAL segments waiting to be archived.', [{ value: w.pending_segments }]);
    g('guts_wal_pending_bytes', 'Bytes of WAL segments and history files waiting to be archived.', [{ value: w.pending_bytes }]);
    g('guts_wal_last_archived_timestamp', 'Unix time the last WAL segment was archived (0 = none yet).', [
      { value: w.last_archived ? Math.floor(Date.parse(w.last_archived.archived_at) / 1000) : 0 },
    ]);
    g('guts_wal_archive_lag_seconds', 'Age of the oldest committed write not yet archived (0 = all archived).', [{ value: Math.round(w.archive_lag_seconds * 1000) / 1000 }]);
    g('guts_wal_timeline_switches_total', 'New WAL timelines started after a continuity gap (a new base backup is needed).', [{ value: w.timeline_switches_total }], 'counter');
    g('guts_wal_timeline', 'Current WAL timeline.', [{ value: w.timeline }]);
    g('guts_wal_backlog', 'Whether writes are refused because the WAL archive backlog exceeds wal.max_pending.', [{ value: w.backlog ? 1 : 0 }]);
  }
  if (s.startedAt !== undefined) g('guts_start_time_seconds', 'Unix time the node started.', [{ value: Math.floor(s.startedAt / 1000) }]);

  let out = '';
  for (const f of fams) {
    out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
    for (const smp of f.samples) {
      const labels = smp.labels ? `{${Object.entries(smp.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
      out += `${f.name}${labels} ${formatValue(smp.value)}\n`;
    }
  }
  return out;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
