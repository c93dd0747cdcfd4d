// `wal status` without a running node: from DATA_DIR/wal/state.json and pending/.
import { GutsError } from '../errors';
import type { WalStatus } from './archiver';
import { listPending, readWalState } from './state';

export function offlineWalStatus(dataDir: string): WalStatus {
  const s = readWalState(dataDir);
  if (!s) throw new GutsError('GUTS_NOT_FOUND', `WAL archiving has never run on ${dataDir} (no wal/state.json)`, dataDir);
  const pending = listPending(dataDir);
  return {
    archiving: false,
    timeline: s.timeline,
    needs_base_backup: s.needs_base_backup,
    last_archived: s.last_archived,
    pending_segments: pending.filter((p) => p.kind === 'segment').length,
    pending_bytes: pending.reduce((n, p) => n + p.bytes, 0),
    archived_segments_total: s.archived_segments_total,
    archive_failures_total: s.archive_failures_total,
    timeline_switches_total: s.timeline_switches_total,
    last_error: s.last_error,
    backlog: false,
    max_pending_bytes: null,
    open_segment: null,
    db_next_seq: s.db_next_seq,
    consensus_next_seq: s.consensus_next_seq,
    archive_lag_seconds: 0,
    next_attempt: null,
  };
}
