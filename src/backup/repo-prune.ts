// `backup prune --repo`: the archive keep rules (prune.ts decide()) over a
// repository's snapshots, then mark and sweep under the exclusive repository
// lock (repo-lock.ts): no create is uploading meanwhile, so an object no
// remaining snapshot references is garbage (a forgotten snapshot's, or the
// leftover of a killed create or prune). Order: forgotten manifests first,
// then unreferenced objects; killed at any point, every remaining snapshot
// is whole and the next prune sweeps what is left. WAL segments are never
// removed here (archive prune does that for archives).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { isProcessAlive, parseTempName } from '../fsutil';
import { Location } from '../location';
import { BackupEntry } from './list';
import { decide, KeepPolicy } from './prune';
import { loadSnapshots, requireConfig } from './repo-format';
import { acquireLock } from './repo-lock';

export interface RepoPruneResult {
  repo: string;
  dry_run: boolean;
  kept: Array<{ id: string; created: string; kind: string; reasons: string[] }>;
  removed: Array<{ id: string; created: string; kind: string }>;
  /** unreferenced objects swept (or that would be), their size */
  swept_objects: number;
  swept_bytes: number;
  /** stale locks of dead processes and temp files of killed uploads removed */
  removed_leftovers: string[];
  /** objects kept (referenced by a kept snapshot) and their size */
  kept_objects: number;
  kept_bytes: number;
}

/** A temp file of a local upload (fsutil.tempPathFor, tag `upload`) whose process is gone. */
function isDeadUpload(name: string): boolean {
  const t = parseTempName(name);
  return t?.tag === 'upload' && !isProcessAlive(t.pid);
}

/** Temp files of local uploads whose process is gone. */
function deadUploadTemps(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        if (isDeadUpload(e.name)) out.push(p);
      }
    }
  };
  for (const sub of ['data', 'files', 'snapshots', 'locks', '.']) {
    if (sub === '.') {
      for (const name of fs.existsSync(root) ? fs.readdirSync(root) : []) {
        if (isDeadUpload(name)) out.push(path.join(root, name));
      }
    } else walk(path.join(root, sub));
  }
  return out;
}

export interface RepoPruneOptions {
  dryRun?: boolean;
  log?: (line: string) => void;
  /** seconds to wait for running creates (and another prune) to finish (default 0: GUTS_REPO_LOCKED at once) */
  lockWait?: number;
  /** the one-line note when the wait starts (the CLI prints it on stderr, also with --json) */
  onLockWait?: (line: string) => void;
  signal?: AbortSignal;
}

export async function pruneRepo(loc: Location, policy: KeepPolicy, opts: RepoPruneOptions = {}): Promise<RepoPruneResult> {
  await requireConfig(loc);
  const lock = await acquireLock(loc, 'prune', { waitSeconds: opts.lockWait, onWait: opts.onLockWait ?? opts.log, signal: opts.signal });
  try {
    const snaps = await loadSnapshots(loc);
    const entries: BackupEntry[] = snaps.map((s) => ({
      key: s.key,
      url: s.url,
      kind: s.manifest.kind,
      created: s.manifest.created,
      described_by: 'manifest',
      size_bytes: s.manifest.added_bytes,
      objects: s.manifest.objects,
      repositories: s.manifest.repositories,
      wal_position: s.manifest.wal ? { timeline: s.manifest.wal.timeline, segment: s.manifest.wal.segment, db_seq: s.manifest.wal.db_seq } : null,
      sidecar: true,
      manifest: true,
      sha256: null,
      valid: true,
    }));
    const decisions = snaps.length ? decide(entries, policy) : [];
    const result: RepoPruneResult = {
      repo: loc.url,
      dry_run: Boolean(opts.dryRun),
      kept: [],
      removed: [],
      swept_objects: 0,
      swept_bytes: 0,
      removed_leftovers: lock.removedStale,
      kept_objects: 0,
      kept_bytes: 0,
    };
    const referenced = new Set<string>();
    const forget: string[] = [];
    decisions.forEach((d, i) => {
      const s = snaps[i];
      if (d.keep) {
        result.kept.push({ id: s.id, created: s.manifest.created, kind: s.manifest.kind, reasons: d.reasons });
        for (const f of s.manifest.files) referenced.add(f.object);
        opts.log?.(`keep   ${s.id} (${s.manifest.created}): ${d.reasons.join(', ')}`);
      } else {
        result.removed.push({ id: s.id, created: s.manifest.created, kind: s.manifest.kind });
        forget.push(s.key);
        opts.log?.(`${opts.dryRun ? 'would remove' : 'remove'} ${s.id} (${s.manifest.created})`);
      }
    });
    // mark: everything a kept snapshot references stays; sweep: manifests first, then objects
    if (!opts.dryRun) for (const k of forget) await loc.delete(k);
    for (const prefix of ['data/', 'files/']) {
      for (const o of await loc.list(prefix)) {
        if (referenced.has(o.key)) {
          result.kept_objects++;
          result.kept_bytes += o.size;
          continue;
        }
        if (!opts.dryRun) await loc.delete(o.key);
        result.swept_objects++;
        result.swept_bytes += o.size;
      }
    }
    if (loc.kind === 'local') {
      for (const p of deadUploadTemps(loc.url)) {
        if (!opts.dryRun) fs.rmSync(p, { force: true });
        result.removed_leftovers.push(p);
      }
    }
    opts.log?.(`${opts.dryRun ? 'would sweep' : 'swept'} ${result.swept_objects} unreferenced objects (${result.swept_bytes} bytes)`);
    return result;
  } finally {
    await lock.release().catch(() => undefined);
  }
}
