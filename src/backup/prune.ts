// backup prune: restic-style keep rules over the backups at a location.
//
//   --keep-last N     the N newest
//   --keep-daily N    the newest of each of the last N days that have a backup
//   --keep-weekly N   the newest of each of the last N ISO weeks that have one
//   --keep-within D   every backup created within D of the newest one
//
// Rules apply per group: full and hot backups together, consensus-only
// backups apart (an hourly consensus series never pushes out a daily full).
// Whatever the rules say, the newest valid backup of each group is kept.
// A removed archive goes with its .sha256 and .manifest.json.
//
// WAL (wal.archive_dir, a directory or s3://): a kept backup with a WAL
// position needs every segment from its manifest's wal.segment on (segment
// numbers continue across timelines) for point-in-time restore; segments
// numbered below the oldest such position are removed. Timeline histories are
// never removed. No kept backup with a WAL position: nothing is removed.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { GutsConfig } from '../config';
import { fsError, GutsError } from '../errors';
import { parseSegmentName } from '../wal/segment';
import { DirLocation, openWalLocation } from '../wal/target';
import { Location } from '../location';
import { MANIFEST_SUFFIX, SIDECAR_SUFFIX } from '../location/backup-stream';
import { BackupEntry, listBackups } from './list';

export interface KeepPolicy {
  last?: number;
  daily?: number;
  weekly?: number;
  /** milliseconds */
  within?: number;
}

export interface PruneDecision {
  entry: BackupEntry;
  keep: boolean;
  /** why it is kept: "last 1", "daily 2026-11-28", "weekly 2026-W48", "within 7d", "newest valid" */
  reasons: string[];
}

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3, y: 365 * 86400e3 };

/** "7d", "36h", "2w", "1d12h" -> milliseconds. */
export function parseKeepWithin(text: string): number {
  const s = String(text).trim();
  if (!/^(\d+[smhdwy])+$/.test(s)) throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid duration "${text}" for keep-within (use e.g. 7d, 36h, 2w, 1d12h)`);
  let ms = 0;
  for (const m of s.matchAll(/(\d+)([smhdwy])/g)) ms += Number(m[1]) * UNITS[m[2]];
  return ms;
}

function dayOf(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** ISO-8601 week, e.g. 2026-W48. */
function weekOf(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86400e3 + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

function describeWithin(ms: number): string {
  for (const [u, f] of [['w', UNITS.w], ['d', UNITS.d], ['h', UNITS.h], ['m', UNITS.m]] as const) if (ms % f === 0) return `${ms / f}${u}`;
  return `${ms / 1000}s`;
}

export function policyIsEmpty(p: KeepPolicy): boolean {
  return !p.last && !p.daily && !p.weekly && !p.within;
}

/** Decides, for one location's backups (any order), what is kept and why. */
export function decide(entries: BackupEntry[], policy: KeepPolicy): PruneDecision[] {
  if (policyIsEmpty(policy)) throw new GutsError('GUTS_INVALID_ARGUMENT', 'no keep rule: give --keep-last, --keep-daily, --keep-weekly or --keep-within (or backup.keep_* in config.yaml)');
  const decisions = new Map<BackupEntry, PruneDecision>();
  const groups = new Map<string, BackupEntry[]>();
  for (const e of entries) {
    decisions.set(e, { entry: e, keep: false, reasons: [] });
    const g = e.kind === 'consensus-only' ? 'consensus-only' : 'full';
    (groups.get(g) ?? groups.set(g, []).get(g)!).push(e);
  }
  const keep = (e: BackupEntry, why: string) => {
    const d = decisions.get(e)!;
    d.keep = true;
    d.reasons.push(why);
  };
  for (const list of groups.values()) {
    const sorted = [...list].sort((a, b) => Date.parse(b.created) - Date.parse(a.created) || (a.key < b.key ? 1 : -1));
    if (policy.last) sorted.slice(0, policy.last).forEach((e, i) => keep(e, `last ${i + 1}`));
    const buckets = (n: number | undefined, label: string, of: (d: Date) => string) => {
      if (!n) return;
      const seen = new Set<string>();
      for (const e of sorted) {
        const b = of(new Date(e.created));
        if (seen.has(b)) continue;
        if (seen.size >= n) break;
        seen.add(b);
        keep(e, `${label} ${b}`);
      }
    };
    buckets(policy.daily, 'daily', dayOf);
    buckets(policy.weekly, 'weekly', weekOf);
    if (policy.within && sorted.length) {
      const newest = Date.parse(sorted[0].created);
      for (const e of sorted) if (newest - Date.parse(e.created) <= policy.within) keep(e, `within ${describeWithin(policy.within)}`);
    }
    const newestValid = sorted.find((e) => e.valid);
    if (newestValid && !decisions.get(newestValid)!.keep) keep(newestValid, 'newest valid');
    else if (newestValid) decisions.get(newestValid)!.reasons.push('newest valid');
  }
  return entries.map((e) => decisions.get(e)!);
}

export interface PruneResult {
  location: string;
  dry_run: boolean;
  kept: Array<{ url: string; created: string; kind: string; reasons: string[] }>;
  removed: Array<{ url: string; created: string; kind: string; files: string[] }>;
  wal: { pruned: boolean; removed: string[]; note: string };
}

/** The WAL half of prune (see the header); `walSpec` is wal.archive_dir, '' when there is none. */
export async function walPrune(walSpec: string, kept: BackupEntry[], dryRun: boolean, cfg?: GutsConfig): Promise<PruneResult['wal']> {
  if (!walSpec) return { pruned: false, removed: [], note: 'no WAL archive (wal.archive_dir is not set)' };
  const needed = kept.map((e) => e.wal_position?.segment).filter((s): s is number => typeof s === 'number');
  if (!needed.length) return { pruned: false, removed: [], note: 'no kept backup has a WAL position: WAL segments kept' };
  const oldest = Math.min(...needed);
  const loc = openWalLocation(walSpec, cfg);
  const names = loc.list ? await loc.list() : [];
  const removed: string[] = [];
  for (const name of names) {
    const seg = parseSegmentName(name);
    if (!seg || seg.segment >= oldest) continue;
    if (!dryRun) {
      if (loc instanceof DirLocation) await fs.promises.unlink(path.join(loc.dir, name)).catch((e) => {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(e, 'cannot remove', path.join(loc.dir, name));
      });
      else if ('delete' in loc) await (loc as unknown as { delete(n: string): Promise<void> }).delete(name);
      else return { pruned: false, removed, note: `${loc.url} cannot remove files` };
    }
    removed.push(name);
  }
  (loc as unknown as { location?: Location }).location?.close();
  return { pruned: true, removed, note: `${dryRun ? 'would remove' : 'removed'} ${removed.length} WAL segments below segment ${oldest} (the oldest kept backup's position) from ${loc.url}` };
}

/**
 * The policy of flags, else of config.yaml backup.keep_*, else
 * backup.retention_days as --keep-within Nd (the guide's RETENTION_DAYS).
 */
export function policyFrom(
  flags: { keepLast?: number; keepDaily?: number; keepWeekly?: number; keepWithin?: string },
  backup: { keep_last: number; keep_daily: number; keep_weekly: number; keep_within: string; retention_days: number },
): KeepPolicy {
  if (flags.keepLast || flags.keepDaily || flags.keepWeekly || flags.keepWithin)
    return { last: flags.keepLast, daily: flags.keepDaily, weekly: flags.keepWeekly, within: flags.keepWithin ? parseKeepWithin(flags.keepWithin) : undefined };
  const fromConfig: KeepPolicy = {
    last: backup.keep_last || undefined,
    daily: backup.keep_daily || undefined,
    weekly: backup.keep_weekly || undefined,
    within: backup.keep_within ? parseKeepWithin(backup.keep_within) : undefined,
  };
  if (!policyIsEmpty(fromConfig)) return fromConfig;
  return { within: (backup.retention_days || 7) * UNITS.d };
}

export async function pruneBackups(
  location: Location,
  policy: KeepPolicy,
  opts: { dryRun?: boolean; log?: (line: string) => void; walArchive?: string; config?: GutsConfig } = {},
): Promise<PruneResult> {
  const entries = await listBackups(location);
  const decisions = decide(entries, policy);
  const result: PruneResult = { location: location.url, dry_run: Boolean(opts.dryRun), kept: [], removed: [], wal: { pruned: false, removed: [], note: '' } };
  for (const d of decisions) {
    const e = d.entry;
    if (d.keep) {
      result.kept.push({ url: e.url, created: e.created, kind: e.kind, reasons: d.reasons });
      opts.log?.(`keep   ${e.url} (${e.created}): ${d.reasons.join(', ')}`);
      continue;
    }
    // the archive first: a sidecar left by a failure is harmless, an archive without its sidecar is not
    const files = [e.key, e.key + SIDECAR_SUFFIX, e.key + MANIFEST_SUFFIX];
    const removedFiles: string[] = [];
    for (const k of files) {
      if (k !== e.key && !(await location.stat(k))) continue;
      if (!opts.dryRun) await location.delete(k);
      removedFiles.push(location.urlOf(k));
    }
    result.removed.push({ url: e.url, created: e.created, kind: e.kind, files: removedFiles });
    opts.log?.(`${opts.dryRun ? 'would remove' : 'remove'} ${e.url} (${e.created})`);
  }
  result.wal = await walPrune(opts.walArchive ?? '', decisions.filter((d) => d.keep).map((d) => d.entry), Boolean(opts.dryRun), opts.config);
  opts.log?.(`WAL: ${result.wal.note}`);
  return result;
}
