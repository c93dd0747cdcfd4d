// backup run: the guide's guts-backup.sh in one command.
//
//   create  hot through the running node if one serves the data dir, else cold;
//           to --output-dir (a local file) or --to s3://... (streamed upload)
//   verify  the stored archive, read back from where it was stored
//   upload  (s3: done by create's streamed multipart upload)
//   prune   the location's keep rules
//   metrics Pushgateway and/or node_exporter textfile
//   notify  POST the JSON result
//
// With a backup repository (--repo / backup.repo, docs/FORMAT.md "Backup
// repository"), create is a snapshot (only new SSTs stored), verify reads every
// object of that snapshot back, prune applies the same keep rules to snapshots
// and sweeps unreferenced objects (WAL segments are left alone); both wait up
// to lockWait seconds for a conflicting repository lock. Same metrics (size =
// the bytes the snapshot added, as the node's /metrics records it), same exit
// codes.
//
// One log line per step. A failed step stops the run (nothing is pruned
// after a failed backup or verify): the result names the step, metrics say
// guts_backup_last_success 0, the failure is notified, and the exit code is
// the step's (1 invalid archive, 2 I/O or config, 3 locked, 130 interrupted).
// Metrics and notification failures are reported, never fatal.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { createBackup, isoSeconds } from '../backup';
import type { GutsConfig } from '../config';
import { verifyBackup } from '../backup-verify';
import { errorCode, exitCodeFor, GutsError } from '../errors';
import { Location } from '../location';
import { archiveSource, createBackupAt, MANIFEST_SUFFIX } from '../location/backup-stream';
import { connectNode } from '../node-client';
import { KeepPolicy, pruneBackups, PruneResult } from './prune';
import { createRepoSnapshot } from './repo-create';
import { pruneRepo } from './repo-prune';
import { verifyRepo } from './repo-read';
import { Delivery, notify, pushMetrics, redactUrl, RunMetrics, writeTextfile } from './report';

export type StepName = 'create' | 'verify' | 'upload' | 'prune' | 'metrics' | 'notify';

export interface RunOptions {
  dataDir: string;
  location: Location;
  consensusOnly?: boolean;
  policy: KeepPolicy;
  /** skip the prune step */
  noPrune?: boolean;
  /** WAL archive pruned with the backups (wal.archive_dir) */
  walArchive?: string;
  config?: GutsConfig;
  pushgateway?: string;
  textfile?: string;
  notifyUrl?: string;
  level?: number;
  threads?: number;
  cpuShare?: number;
  signal?: AbortSignal;
  log: (line: string) => void;
  /** the archive's name (default guts-YYYYMMDD-HHMMSS.tar.zst, consensus-YYYYMMDD-HHMMSS.tar.zst) */
  name?: string;
  /** `location` is a backup repository: a snapshot instead of an archive (not with consensusOnly) */
  repository?: boolean;
  /** repository runs: seconds create and prune wait for a conflicting repository lock (default 0) */
  lockWait?: number;
}

export interface RunStep {
  step: StepName;
  status: 'ok' | 'failed' | 'skipped';
  seconds: number;
  message: string;
}

export interface RunResult {
  status: 'success' | 'failure';
  timestamp: string;
  file: string | null;
  size_bytes: number | null;
  checksum: string | null;
  kind: string;
  location: string;
  duration_seconds: number;
  failed_step: StepName | null;
  error: { code: string; message: string; exit_code: number } | null;
  steps: RunStep[];
  prune: { kept: number; removed: string[]; wal: string } | null;
  metrics: { pushgateway: Delivery | null; textfile: Delivery | null };
  notify?: Delivery | null;
  /** repository runs only: the snapshot made (file is then REPO#ID, checksum null) */
  snapshot?: { id: string; total_bytes: number; stored_bytes: number; added_bytes: number; added_objects: number; reused_files: number } | null;
}

function defaultName(consensus: boolean, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${consensus ? 'consensus' : 'guts'}-${stamp}.tar.zst`;
}

export async function runBackup(opts: RunOptions): Promise<{ result: RunResult; exitCode: number }> {
  const t0 = Date.now();
  const loc = opts.location;
  const client = await connectNode(opts.dataDir).catch(() => null);
  const hot = Boolean(client);
  client?.close();
  const kind = opts.consensusOnly ? 'consensus-only' : hot ? 'hot' : 'full';
  const key = opts.name ?? defaultName(Boolean(opts.consensusOnly));
  const result: RunResult = {
    status: 'success',
    timestamp: isoSeconds(),
    file: null,
    size_bytes: null,
    checksum: null,
    kind,
    location: loc.url,
    duration_seconds: 0,
    failed_step: null,
    error: null,
    steps: [],
    prune: null,
    metrics: { pushgateway: null, textfile: null },
  };
  if (opts.repository) result.snapshot = null;
  let exitCode = 0;
  let verifyOk: 0 | 1 | undefined;
  let snapshotId = '';

  const step = async (name: StepName, fn: () => Promise<string>): Promise<boolean> => {
    const s0 = Date.now();
    try {
      if (opts.signal?.aborted) throw new GutsError('GUTS_CANCELLED', 'interrupted');
      const message = await fn();
      result.steps.push({ step: name, status: 'ok', seconds: (Date.now() - s0) / 1000, message });
      opts.log(`${name}: ${message}`);
      return true;
    } catch (e) {
      const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
      exitCode = exitCodeFor(e);
      result.status = 'failure';
      result.failed_step = name;
      result.error = { code: errorCode(e), message, exit_code: exitCode };
      result.steps.push({ step: name, status: 'failed', seconds: (Date.now() - s0) / 1000, message });
      opts.log(`${name}: FAILED: ${errorCode(e)}: ${message}`);
      return false;
    }
  };

  const ok =
    (await step('create', async () => {
      if (opts.repository) {
        if (opts.consensusOnly) throw new GutsError('GUTS_INVALID_ARGUMENT', 'a backup repository holds whole snapshots (db/ and consensus/): consensus-only backups need a directory or s3:// location (--output-dir / --to)');
        const r = await createRepoSnapshot({
          dataDir: opts.dataDir,
          location: loc,
          kind: hot ? 'hot' : 'full',
          level: opts.level,
          parallel: opts.threads,
          backgroundWithNode: true,
          cpuShare: opts.cpuShare,
          signal: opts.signal,
          lockWait: opts.lockWait,
          log: opts.log,
        });
        snapshotId = r.snapshot;
        result.kind = r.kind;
        result.file = `${loc.url.replace(/\/$/, '')}#${r.snapshot}`;
        result.size_bytes = r.added_bytes;
        result.snapshot = { id: r.snapshot, total_bytes: r.total_bytes, stored_bytes: r.stored_bytes, added_bytes: r.added_bytes, added_objects: r.added_objects, reused_files: r.reused_files };
        return `snapshot ${r.snapshot} in ${r.repo} (${r.kind}, ${r.files} files, ${r.total_bytes} bytes; ${r.reused_files} SSTs already stored, ${r.added_objects} objects added, ${r.added_bytes} bytes; ${r.source === 'node' ? 'through the running node' : 'node not running'})`;
      }
      if (loc.kind === 'local') fs.mkdirSync(loc.url, { recursive: true, mode: 0o700 }); // the guide's mkdir -p "$BACKUP_DIR"
      const common = {
        dataDir: opts.dataDir,
        kind: kind as 'full' | 'hot' | 'consensus-only',
        level: opts.level,
        threads: opts.threads,
        signal: opts.signal,
        backgroundWithNode: true,
        cpuShare: opts.cpuShare,
      };
      const r =
        loc.kind === 's3'
          ? await createBackupAt({ ...common, location: loc, key })
          : await createBackup({ ...common, output: loc.urlOf(key) });
      // the manifest beside a local archive too: backup list describes it without reading the archive
      if (loc.kind === 'local') await loc.put(key + MANIFEST_SUFFIX, r.manifest, { overwrite: true });
      result.file = r.file;
      result.size_bytes = r.size_bytes;
      result.checksum = r.checksum;
      return `${r.file} (${r.kind}, ${r.size_bytes} bytes, ${r.checksum}, ${r.source === 'node' ? 'through the running node' : 'node not running'})`;
    })) &&
    (await step('verify', async () => {
      if (opts.repository) {
        const report = await verifyRepo(loc, { snapshot: snapshotId, parallel: opts.threads, signal: opts.signal });
        verifyOk = report.status === 'VALID' ? 1 : 0;
        if (report.status !== 'VALID') {
          const p = report.problems[0];
          throw new GutsError('GUTS_REPO_CORRUPT', `snapshot ${snapshotId} of ${loc.url} is INVALID: ${p ? `${p.object}: ${p.message}` : 'see backup verify --repo'}`);
        }
        return `snapshot ${snapshotId} VALID (${report.objects_checked} objects, ${report.bytes_checked} bytes read back)`;
      }
      const source = loc.kind === 's3' ? await archiveSource(loc, key, { signal: opts.signal }) : undefined;
      const report = await verifyBackup({ file: loc.urlOf(key), source, threads: opts.threads });
      verifyOk = report.status === 'VALID' ? 1 : 0;
      if (report.status !== 'VALID') {
        const p = report.problems[0];
        throw new GutsError('GUTS_CORRUPT', `${result.file} is INVALID: ${p ? `${p.path || path.basename(key)}: ${p.message}` : 'see backup verify'}`);
      }
      return `${result.file} VALID (sidecar ${report.sidecar})`;
    })) &&
    (await step('upload', async () => (loc.kind === 's3' ? `${result.file} (streamed by create${opts.repository ? ': every object uploaded before the snapshot manifest' : ': multipart upload completed'})` : `skipped: ${loc.url} is local`))) &&
    (opts.noPrune ||
      (await step('prune', async () => {
        if (opts.repository) {
          const r = await pruneRepo(loc, opts.policy, { lockWait: opts.lockWait, onLockWait: opts.log, signal: opts.signal });
          result.prune = { kept: r.kept.length, removed: r.removed.map((x) => `${loc.url.replace(/\/$/, '')}#${x.id}`), wal: 'repository prune never removes WAL segments' };
          return `kept ${r.kept.length}, removed ${r.removed.length}${r.removed.length ? ` (${r.removed.map((x) => x.id).join(', ')})` : ''}, swept ${r.swept_objects} unreferenced objects (${r.swept_bytes} bytes)`;
        }
        const r: PruneResult = await pruneBackups(loc, opts.policy, { walArchive: opts.walArchive, config: opts.config });
        result.prune = { kept: r.kept.length, removed: r.removed.map((x) => x.url), wal: r.wal.note };
        return `kept ${r.kept.length}, removed ${r.removed.length}${r.removed.length ? ` (${r.removed.map((x) => path.posix.basename(x.url)).join(', ')})` : ''}`;
      })));
  void ok;
  if (result.steps.find((s) => s.step === 'upload')?.message.startsWith('skipped')) result.steps.find((s) => s.step === 'upload')!.status = 'skipped';

  result.duration_seconds = (Date.now() - t0) / 1000;
  result.timestamp = isoSeconds();
  const m: RunMetrics = {
    kind,
    lastSuccess: result.status === 'success' ? 1 : 0,
    verifyLastSuccess: verifyOk,
    ...(result.status === 'success'
      ? { lastBackupTimestamp: Math.floor(Date.now() / 1000), sizeBytes: result.size_bytes ?? 0, durationSeconds: result.duration_seconds }
      : {}),
  };
  const deliveries: string[] = [];
  if (opts.pushgateway) {
    result.metrics.pushgateway = await pushMetrics(opts.pushgateway, m);
    deliveries.push(`pushgateway ${result.metrics.pushgateway.url}: ${result.metrics.pushgateway.ok ? 'ok' : `FAILED (${result.metrics.pushgateway.error}; not fatal)`}`);
  }
  if (opts.textfile) {
    result.metrics.textfile = await writeTextfile(path.resolve(opts.textfile), m);
    deliveries.push(`textfile ${result.metrics.textfile.file}: ${result.metrics.textfile.ok ? 'ok' : `FAILED (${result.metrics.textfile.error}; not fatal)`}`);
  }
  const mOk = deliveries.every((d) => !d.includes('FAILED'));
  result.steps.push({ step: 'metrics', status: deliveries.length ? (mOk ? 'ok' : 'failed') : 'skipped', seconds: 0, message: deliveries.join('; ') || 'skipped: no --pushgateway or --textfile' });
  opts.log(`metrics: ${deliveries.join('; ') || 'skipped: no --pushgateway or --textfile'}`);
  if (opts.notifyUrl) {
    const sent = await notify(opts.notifyUrl, result);
    result.notify = sent;
    result.steps.push({ step: 'notify', status: sent.ok ? 'ok' : 'failed', seconds: 0, message: sent.ok ? `${sent.url}` : `${sent.url}: ${sent.error}` });
    opts.log(`notify: ${redactUrl(opts.notifyUrl)}: ${sent.ok ? `sent (${result.status})` : `FAILED (${sent.error}; not fatal)`}`);
  } else {
    result.notify = null;
  }
  opts.log(result.status === 'success' ? `done: ${result.file} in ${result.duration_seconds.toFixed(1)} s` : `done: FAILED at ${result.failed_step} (exit ${exitCode})`);
  return { result, exitCode };
}
