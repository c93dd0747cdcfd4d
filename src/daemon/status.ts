// `guts-node status`: asks the running node when there is one; otherwise reports
// what the data dir itself says (sizes, last backup, and counts from a
// read-only open when no process holds the store).
import * as fs from 'node:fs';

import { dirSize } from '../fsutil';
import { LastBackup, lastFullBackup, readBackupRecords } from '../metrics';
import { Counts } from '../native';
import { connectNode } from '../node-client';
import { dataDirLayout, GutsStore, storeLockHolder } from '../store';
import { storePermissionWarnings } from '../store-permissions';
import { inspectRuntimeFiles } from './runtime-files';

export interface StatusReport {
  dataDir: string;
  running: boolean;
  /** where the counts come from: the running node, a read-only open, or nowhere */
  source: 'node' | 'store' | 'none';
  pid?: number;
  apiAddr?: string;
  version?: string;
  startedAt?: string;
  maintenance: { active: boolean; until?: string } | null;
  sizes: { db: number; consensus: number; checkpoints: number; total: number };
  counts: Counts | null;
  consensus: { blocks: number; finalizedHeight: number } | null;
  checkpoints?: Array<{ id: string; dir: string; created: string; expires: string }>;
  /** the newest full or hot backup (the unlabelled guts_last_backup_timestamp) */
  lastBackup: LastBackup | null;
  /** the last consensus-only backup ({kind="consensus-only"}) */
  lastConsensusBackup: LastBackup | null;
  notes: string[];
  /** e.g. a store readable by group/other users (src/store-permissions.ts) */
  warnings: string[];
}

export async function collectStatus(dataDir: string): Promise<StatusReport> {
  const l = dataDirLayout(dataDir);
  const sizes = { db: dirSize(l.db), consensus: dirSize(l.consensus), checkpoints: dirSize(l.checkpoints), total: 0 };
  sizes.total = sizes.db + sizes.consensus + sizes.checkpoints;
  const records = readBackupRecords(dataDir);
  const base: StatusReport = {
    dataDir,
    running: false,
    source: 'none',
    maintenance: null,
    sizes,
    counts: null,
    consensus: null,
    lastBackup: lastFullBackup(records),
    lastConsensusBackup: records.consensus_only ?? null,
    notes: [],
    warnings: storePermissionWarnings(dataDir),
  };

  let client: Awaited<ReturnType<typeof connectNode>> = null;
  try {
    client = await connectNode(dataDir);
  } catch (e) {
    // e.g. the socket belongs to the node's user: report what the files say.
    base.notes.push(`cannot talk to the node: ${(e as Error).message}`);
  }
  if (client) {
    try {
      const s = await client.status();
      return {
        ...base,
        running: true,
        source: 'node',
        pid: s.pid,
        apiAddr: s.apiAddr,
        version: s.version,
        startedAt: s.startedAt,
        maintenance: { active: s.maintenance, ...(s.maintenanceUntil ? { until: s.maintenanceUntil } : {}) },
        counts: s.counts,
        consensus: s.consensus ?? null,
        checkpoints: s.checkpoints,
        lastBackup: s.lastBackup ?? base.lastBackup,
      };
    } finally {
      client.close();
    }
  }

  if (!fs.existsSync(dataDir)) {
    base.notes.push(`data dir ${dataDir} does not exist`);
    return base;
  }
  const rt = await inspectRuntimeFiles(dataDir);
  if (rt.socket === 'stale' || (fs.existsSync(l.pidFile) && !rt.pid)) base.notes.push('leftovers of a node that did not stop cleanly (stale pid file or socket); the next start removes them');
  const holder = storeLockHolder(dataDir);
  if (holder) {
    base.notes.push(`store is held by process ${holder}${rt.pid === holder ? ' (node starting or not answering on its admin socket)' : ''}; counts unavailable`);
    if (rt.pid === holder) {
      base.running = true;
      base.pid = holder;
    }
    return base;
  }
  if (!fs.existsSync(`${l.db}/CURRENT`)) {
    base.notes.push('no store in this data dir yet');
    return base;
  }
  try {
    const store = await GutsStore.open(dataDir, { readOnly: true });
    try {
      [base.counts, base.consensus] = await Promise.all([store.counts(), store.consensusInfo()]);
      base.source = 'store';
    } finally {
      await store.close();
    }
  } catch (e) {
    base.notes.push(`cannot open the store read-only: ${(e as Error).message}`);
  }
  return base;
}
