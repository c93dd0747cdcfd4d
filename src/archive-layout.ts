// What a guts-node backup may hold, per kind (docs/FORMAT.md "Reader rules"):
// the files and directories the writer produces and the MANIFEST.json fields
// with their types and ranges. `backup verify` and `backup restore` accept
// exactly this; anything else (runtime files such as node.pid, admin.sock,
// checkpoints/ or last-backup.json, an archive of only GUTS-INDEX and
// MANIFEST.json, a `kind` its contents contradict) is INVALID.
//
// The native reader gets layoutPatterns() and refuses a file or directory
// outside every kind's layout as soon as its tar header arrives (nothing of it
// is written); the per-kind rules need the manifest, which comes last, and are
// checked here. To extend the format, add a rule or a field below.
import type { BackupKind } from './archive';
import type { ArchiveProblem, ReadEntry } from './native';

export const BACKUP_KINDS: readonly BackupKind[] = ['full', 'hot', 'consensus-only'];
const STORE_KINDS: readonly BackupKind[] = ['full', 'hot'];

export interface LayoutRule {
  /** archive path; '#' matches one or more ASCII digits (the same matcher as native/archive_reader.cc) */
  pattern: string;
  /** kinds that may hold it */
  kinds: readonly BackupKind[];
  /** kinds that must hold it */
  required?: readonly BackupKind[];
  /** must be there whenever its directory is (a RocksDB dir without CURRENT cannot open) */
  requiredWithDir?: boolean;
}

/** The files of one RocksDB checkpoint directory (RocksDB 6.17 names). */
function rocksdbDir(dir: string, kinds: readonly BackupKind[], required: readonly BackupKind[]): LayoutRule[] {
  return [
    { pattern: `${dir}/CURRENT`, kinds, required, requiredWithDir: true },
    { pattern: `${dir}/MANIFEST-#`, kinds, required, requiredWithDir: true },
    { pattern: `${dir}/OPTIONS-#`, kinds },
    { pattern: `${dir}/IDENTITY`, kinds },
    { pattern: `${dir}/#.sst`, kinds },
    { pattern: `${dir}/#.log`, kinds },
    { pattern: `${dir}/#.blob`, kinds },
  ];
}

export const LAYOUT: readonly LayoutRule[] = [
  ...rocksdbDir('db', STORE_KINDS, STORE_KINDS),
  // consensus/ is in every backup the tool writes of a store that has one
  ...rocksdbDir('consensus', BACKUP_KINDS, ['consensus-only']),
  { pattern: 'keys/node.key', kinds: BACKUP_KINDS },
  { pattern: 'config/config.yaml', kinds: BACKUP_KINDS },
];

/** The patterns the native reader enforces (any kind). */
export function layoutPatterns(): string[] {
  return LAYOUT.map((r) => r.pattern);
}

function patternRegExp(pattern: string): RegExp {
  const body = pattern
    .split('#')
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[0-9]+');
  return new RegExp(`^${body}$`);
}
const COMPILED = LAYOUT.map((r) => ({ rule: r, re: patternRegExp(r.pattern), dir: r.pattern.slice(0, r.pattern.lastIndexOf('/')) }));

/** The layout problems of an archive's entries for its manifest's kind. */
export function checkLayout(kind: BackupKind, entries: readonly ReadEntry[]): ArchiveProblem[] {
  const problems: ArchiveProblem[] = [];
  const bad = (p: string, message: string) => problems.push({ path: p, code: 'GUTS_CORRUPT', message });
  const matched = new Set<LayoutRule>();
  const dirsWithFiles = new Set<string>();
  for (const e of entries) {
    if (e.type === 'dir') {
      if (!COMPILED.some((c) => c.dir === e.path && c.rule.kinds.includes(kind))) bad(e.path, `directory does not belong in a ${kind} backup`);
      continue;
    }
    const c = COMPILED.find((x) => x.re.test(e.path));
    if (!c) bad(e.path, 'file is not part of a guts-node backup');
    else if (!c.rule.kinds.includes(kind)) bad(e.path, `file does not belong in a ${kind} backup (MANIFEST.json kind contradicts the contents)`);
    else {
      matched.add(c.rule);
      dirsWithFiles.add(c.dir);
    }
  }
  for (const c of COMPILED) {
    if (matched.has(c.rule)) continue;
    if (c.rule.required?.includes(kind)) bad(c.rule.pattern.replace('#', 'NNNNNN'), `missing: a ${kind} backup must hold it`);
    else if (c.rule.requiredWithDir && dirsWithFiles.has(c.dir) && c.rule.kinds.includes(kind))
      bad(c.rule.pattern.replace('#', 'NNNNNN'), `missing: ${c.dir}/ cannot be opened without it`);
  }
  return problems;
}

// ---- MANIFEST.json fields ----

/** A manifest dated further ahead than this is refused (clock skew between hosts). */
export const MAX_CLOCK_SKEW_SECONDS = 600;

type FieldCheck = (v: unknown, m: Record<string, unknown>) => string | null;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An object with exactly these optional keys, each checked. */
function shape(keys: Record<string, FieldCheck>, required: string[] = []): FieldCheck {
  return (v, m) => {
    if (!isObject(v)) return 'is not an object';
    for (const k of Object.keys(v)) if (!(k in keys)) return `has an unknown key ${JSON.stringify(k)}`;
    for (const k of required) if (!(k in v)) return `lacks ${k}`;
    for (const [k, check] of Object.entries(keys)) {
      if (!(k in v)) continue;
      const why = check(v[k], m);
      if (why) return `.${k} ${why}`;
    }
    return null;
  };
}
const count: FieldCheck = (v) => (isCount(v) ? null : 'is not a non-negative integer');
const text =
  (max: number): FieldCheck =>
  (v) =>
    typeof v === 'string' && v.length > 0 && v.length <= max ? null : `is not a string of 1 to ${max} characters`;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** Every top-level field the writer produces: field -> check. `files` and `total_bytes` are checked in src/archive.ts. */
export const MANIFEST_FIELDS: Record<string, { required: boolean; check: FieldCheck }> = {
  format: { required: true, check: (v) => (v === 'guts-backup' ? null : `is ${JSON.stringify(v)}, expected "guts-backup"`) },
  format_version: { required: true, check: (v) => (v === 1 ? null : `${JSON.stringify(v)} is not supported (this tool reads version 1)`) },
  tool: { required: true, check: text(200) },
  created: {
    required: true,
    check: (v) => {
      if (typeof v !== 'string' || !ISO_UTC.test(v) || Number.isNaN(Date.parse(v))) return 'is not an ISO-8601 UTC time';
      const ahead = (Date.parse(v) - Date.now()) / 1000;
      return ahead > MAX_CLOCK_SKEW_SECONDS ? `${v} is in the future` : null;
    },
  },
  kind: { required: true, check: (v) => (BACKUP_KINDS.includes(v as BackupKind) ? null : `${JSON.stringify(v)} is not full, hot or consensus-only`) },
  source_data_dir: { required: true, check: (v) => (typeof v === 'string' && v.startsWith('/') && v.length <= 4096 ? null : 'is not an absolute path') },
  hostname: { required: true, check: text(255) },
  rocksdb: {
    required: true,
    check: shape({ db: shape({ sequence: count }, ['sequence']), consensus: shape({ sequence: count }, ['sequence']) }),
  },
  objects: { required: true, check: shape({ commit: count, tree: count, blob: count, tag: count }, ['commit', 'tree', 'blob', 'tag']) },
  repositories: { required: true, check: count },
  consensus: { required: true, check: shape({ blocks: count, finalized_height: count }, ['blocks', 'finalized_height']) },
  compression: {
    required: true,
    check: shape(
      {
        format: (v) => (['zstd', 'gzip', 'none'].includes(v as string) ? null : 'is not zstd, gzip or none'),
        level: (v) => (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 19 ? null : 'is not a level from 1 to 19'),
        frame_size: (v) => (isCount(v) && v > 0 ? null : 'is not a positive integer'),
      },
      ['format'],
    ),
  },
  files: { required: true, check: (v) => (Array.isArray(v) ? null : 'is not a list') },
  total_bytes: { required: true, check: count },
  // WAL position of the base (docs/FORMAT.md "Base backups"): where a point-in-time restore starts
  wal: {
    required: false,
    check: shape(
      {
        timeline: (v) => (isCount(v) && v >= 1 && v <= 0xffffffff ? null : 'is not a timeline id'),
        segment: count,
        db_seq: (v) => (v === null || isCount(v) ? null : 'is not a sequence or null'),
        consensus_seq: (v) => (v === null || isCount(v) ? null : 'is not a sequence or null'),
      },
      ['timeline', 'segment'],
    ),
  },
};

/** Problems of the manifest's fields: missing, unknown, wrong type or range, and counts the kind rules out. */
export function checkManifestFields(m: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, f] of Object.entries(MANIFEST_FIELDS)) {
    if (!(k in m)) {
      if (f.required) out.push(`${k} is missing`);
      continue;
    }
    const why = f.check(m[k], m);
    if (why) out.push(`${k}${why.startsWith('.') ? '' : ' '}${why}`);
  }
  for (const k of Object.keys(m)) if (!(k in MANIFEST_FIELDS)) out.push(`unknown field ${JSON.stringify(k)}`);
  if (m.kind === 'consensus-only' && out.length === 0) {
    const o = m.objects as Record<string, number>;
    if (o.commit || o.tree || o.blob || o.tag || m.repositories) out.push('a consensus-only backup holds no objects, but objects / repositories are not 0');
    if ((m.rocksdb as Record<string, unknown>).db !== undefined) out.push('a consensus-only backup has no db/ store, but rocksdb.db is set');
  }
  return out;
}
