// backup list: every backup archive at a location, described from its
// NAME.manifest.json (written beside archives stored by backup run and by
// create --output s3://...) or, without one, from its name and mtime.
import * as path from 'node:path';

import { parseManifest } from '../archive';
import { Location, ObjectInfo } from '../location';
import { MANIFEST_SUFFIX, parseSidecar, SIDECAR_SUFFIX } from '../location/backup-stream';

export interface BackupEntry {
  /** key under the location */
  key: string;
  /** full path or URL */
  url: string;
  kind: 'full' | 'hot' | 'consensus-only' | 'unknown';
  /** ISO-8601 UTC */
  created: string;
  /** where `created` and `kind` come from */
  described_by: 'manifest' | 'name' | 'mtime';
  size_bytes: number;
  objects: { commit: number; tree: number; blob: number; tag: number } | null;
  repositories: number | null;
  /**
   * Where WAL replay starts for a point-in-time restore from this backup: the
   * manifest's wal position (timeline, first segment needed) and the db
   * store's RocksDB sequence at the checkpoint; null without a manifest.
   */
  wal_position: { timeline: number | null; segment: number | null; db_seq: number | null } | null;
  sidecar: boolean;
  manifest: boolean;
  /** lower-case hex from the sidecar */
  sha256: string | null;
  /** sidecar present and well-formed, manifest (when present) valid: a candidate for "newest valid" */
  valid: boolean;
}

const ARCHIVE = /\.(tar\.zst|tar\.gz|tgz|tar)$/;

/** guts-20250101-120000, guts-hot-20250101, consensus-13 (hour only: no date). */
export function dateFromName(name: string): Date | null {
  const m = /(\d{4})(\d{2})(\d{2})(?:-(\d{2})(\d{2})(\d{2}))?/.exec(path.posix.basename(name));
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0)));
  return Number.isNaN(d.getTime()) ? null : d;
}

function kindFromName(name: string): BackupEntry['kind'] {
  const base = path.posix.basename(name);
  if (/^consensus/.test(base)) return 'consensus-only';
  if (/-hot-/.test(base)) return 'hot';
  return 'unknown';
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export async function listBackups(location: Location): Promise<BackupEntry[]> {
  const objects = await location.list();
  const byKey = new Map<string, ObjectInfo>(objects.map((o) => [o.key, o]));
  const out: BackupEntry[] = [];
  for (const o of objects) {
    if (!ARCHIVE.test(o.key)) continue;
    const sidecarObj = byKey.get(o.key + SIDECAR_SUFFIX);
    const manifestObj = byKey.get(o.key + MANIFEST_SUFFIX);
    let sha256: string | null = null;
    let valid = false;
    if (sidecarObj) {
      const text = await location.get(o.key + SIDECAR_SUFFIX);
      sha256 = text ? parseSidecar(text.toString('utf8'), location.urlOf(o.key + SIDECAR_SUFFIX)).sha256 : null;
      valid = sha256 !== null && o.size > 0;
    }
    const e: BackupEntry = {
      key: o.key,
      url: location.urlOf(o.key),
      kind: kindFromName(o.key),
      created: iso(o.mtime),
      described_by: 'mtime',
      size_bytes: o.size,
      objects: null,
      repositories: null,
      wal_position: null,
      sidecar: Boolean(sidecarObj),
      manifest: false,
      sha256,
      valid,
    };
    const named = dateFromName(o.key);
    if (named) {
      e.created = iso(named);
      e.described_by = 'name';
    }
    if (manifestObj) {
      const text = await location.get(o.key + MANIFEST_SUFFIX);
      const parsed = text ? parseManifest(text.toString('utf8')) : { manifest: null };
      const m = parsed.manifest;
      if (m) {
        e.manifest = true;
        e.kind = m.kind;
        e.created = iso(new Date(m.created));
        e.described_by = 'manifest';
        e.objects = m.objects;
        e.repositories = m.repositories;
        const seq = (m.rocksdb as { db?: { sequence?: unknown } } | undefined)?.db?.sequence;
        const wal = (m as unknown as { wal?: { timeline?: unknown; segment?: unknown; db_seq?: unknown } }).wal;
        const num = (v: unknown) => (typeof v === 'number' ? v : null);
        e.wal_position = { timeline: num(wal?.timeline), segment: num(wal?.segment), db_seq: num(wal?.db_seq) ?? num(seq) };
      } else {
        e.valid = false; // a manifest that does not parse: not trusted as "newest valid"
      }
    }
    out.push(e);
  }
  return out.sort((a, b) => Date.parse(b.created) - Date.parse(a.created) || (a.key < b.key ? 1 : -1));
}
