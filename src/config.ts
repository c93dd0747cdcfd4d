// config.yaml: upstream Guts sections (api, p2p, storage, metrics, logging) plus
// wal and backup. Only the default path may be absent (defaults then); a file
// named by --config or GUTS_CONFIG must exist, so that a typo never silently
// runs a command against /var/lib/guts. An invalid file is an error naming the
// key. `config set` checks the value with the same rules, edits the YAML
// document in place (comments kept) and writes it atomically.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as YAMLTypes from 'yaml';

import { fsError, GutsError } from './errors';
import { writeFileAtomic } from './fsutil';
import type { checkWalCommandTemplate as CheckWalCommandTemplate } from './wal/command';

// yaml costs ~25 ms to load: only when a config file is actually parsed
// (every CLI call loads the config; most have none).
function yaml(): typeof YAMLTypes {
  return require('yaml') as typeof YAMLTypes;
}

export const DEFAULT_CONFIG_PATH = '/etc/guts/config.yaml';

type Kind = 'string' | 'addr' | 'bool' | 'int' | 'duration' | 'size' | 'strings' | 'enum';
interface KeySpec {
  kind: Kind;
  default: unknown;
  values?: string[];
  /** int: allowed range; duration: in milliseconds */
  min?: number;
  max?: number;
  /** appended to the range in errors */
  note?: string;
  help: string;
  /** extra check of a well-typed value: throws, or returns why it is refused */
  check?: (value: never) => string | void;
  /** never printed (config get/set show *** when it is set) */
  secret?: boolean;
}

const MiB = 1024 * 1024;

/** A path key: absolute (a relative one would depend on the cwd of whoever runs the command); empty only where it means "off". */
function absolutePath(v: string, emptyOk: boolean): string | undefined {
  if (v === '') return emptyOk ? undefined : 'must not be empty';
  return path.isAbsolute(v) ? undefined : `must be an absolute path, got ${JSON.stringify(v)}`;
}

/** A WAL command: placeholders known; it must name the file (any of `need`) or it cannot do its job. */
function walCommand(v: string, need: string[], anyOf = false): string | undefined {
  if (v === '') return undefined;
  // loaded only when a config sets a WAL command (every CLI call reads the config)
  (require('./wal/command') as { checkWalCommandTemplate: typeof CheckWalCommandTemplate }).checkWalCommandTemplate(v);
  const has = need.filter((p) => v.replace(/%%/g, '').includes(p));
  if (anyOf ? has.length === 0 : has.length < need.length) return `must use ${need.join(anyOf ? ' or ' : ' and ')} (PostgreSQL semantics: %p = path, %f = file name)`;
  return undefined;
}

/** Every known key, with its type and default. Unknown keys are rejected. */
export const CONFIG_KEYS: Record<string, KeySpec> = {
  'api.addr': { kind: 'addr', default: '127.0.0.1:8080', help: 'HTTP API listen address' },
  'p2p.addr': { kind: 'addr', default: '0.0.0.0:9000', help: 'P2P listen address' },
  'p2p.bootstrap_nodes': { kind: 'strings', default: [], help: 'bootstrap peer multiaddrs' },
  'p2p.key_file': { kind: 'string', default: '/etc/guts/node.key', help: 'node identity key file' },
  'storage.data_dir': { kind: 'string', default: '/var/lib/guts', help: 'data directory (an absolute path)', check: (v: string) => absolutePath(v, false) },
  'metrics.enabled': { kind: 'bool', default: true, help: 'serve /metrics' },
  'metrics.addr': { kind: 'string', default: '', help: 'separate metrics listen address (empty = api.addr)' },
  'metrics.textfile': { kind: 'string', default: '', help: 'node_exporter textfile path written after each backup' },
  'logging.level': { kind: 'enum', default: 'info', values: ['trace', 'debug', 'info', 'warn', 'error'], help: 'log level' },
  'logging.format': { kind: 'enum', default: 'text', values: ['text', 'json'], help: 'log format' },
  'wal.archive_command': {
    kind: 'string',
    default: '',
    help: 'shell command archiving one WAL segment, run in its dir (%p = its absolute path, %f = its name, %% = %)',
    check: (v: string) => walCommand(v, ['%p', '%f'], true),
  },
  'wal.restore_command': {
    kind: 'string',
    default: '',
    help: 'shell command fetching one archived WAL file (%f = archived name, %p = destination path; exit 1 = not archived)',
    check: (v: string) => walCommand(v, ['%f', '%p']),
  },
  'wal.archive_dir': {
    kind: 'string',
    default: '',
    help: 'built-in WAL archive: a local directory (absolute) or s3://bucket/prefix (guts-node wal push/fetch; used when the commands are empty)',
    check: (v: string) => (v.startsWith('s3://') ? undefined : absolutePath(v, true)),
  },
  'wal.archive_timeout': {
    kind: 'duration',
    default: '5s',
    help: 'close the open WAL segment this long after its first write (no segment without writes)',
    check: (v: string) => (parseDuration(v) < 100 || parseDuration(v) > 86_400_000 ? 'must be between 100ms and 24h' : undefined),
  },
  'wal.segment_size': {
    kind: 'size',
    default: '16MiB',
    help: 'close the open WAL segment once its batches reach this many bytes',
    check: (v: string) => (parseSize(v) < 64 * 1024 || parseSize(v) > 1024 * MiB ? 'must be between 64KiB and 1GiB' : undefined),
  },
  'wal.max_pending': {
    kind: 'size',
    default: '1GiB',
    help: 'refuse writes (503 GUTS_WAL_BACKLOG) while closed segments not yet archived exceed this many bytes',
    check: (v: string) => (parseSize(v) < 1 ? 'must be at least 1 byte' : undefined),
  },
  'backup.dir': { kind: 'string', default: '/var/backups/guts', help: 'default backup directory' },
  'backup.retention_days': { kind: 'int', default: 7, min: 1, max: 36500, help: 'days to keep scheduled backups (1 to 36500)' },
  'backup.level': { kind: 'int', default: 3, min: 1, max: 19, note: '.tar.gz backups use at most 9', help: 'compression level for backups: zstd 1 to 19 (.tar.gz: at most 9)' },
  // backup run / list / prune defaults (flags override them)
  'backup.to': { kind: 'string', default: '', help: 'where `backup run` stores backups: a directory or s3://bucket/prefix (empty = backup.dir)' },
  'backup.kind': { kind: 'enum', default: 'full', values: ['full', 'consensus-only'], help: '`backup run`: full (hot when a node runs) or consensus-only' },
  'backup.keep_last': { kind: 'int', default: 0, help: 'prune: keep the N newest backups (0 = rule unused)' },
  'backup.keep_daily': { kind: 'int', default: 0, help: 'prune: keep the newest backup of each of the last N days' },
  'backup.keep_weekly': { kind: 'int', default: 0, help: 'prune: keep the newest backup of each of the last N ISO weeks' },
  'backup.keep_within': { kind: 'string', default: '', help: 'prune: keep every backup younger than this (e.g. 7d; empty = backup.retention_days when no keep rule is set)' },
  'backup.pushgateway': { kind: 'string', default: '', help: '`backup run`: Prometheus Pushgateway URL (job guts-backup)' },
  'backup.textfile': { kind: 'string', default: '', help: '`backup run`: node_exporter textfile written atomically (a file of its own: the node writes metrics.textfile)' },
  'backup.notify_url': { kind: 'string', default: '', help: '`backup run`: URL the JSON result is POSTed to' },
  'backup.s3.endpoint': { kind: 'string', default: '', help: 'S3-compatible endpoint URL (path-style addressing); AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL override it' },
  'backup.s3.region': { kind: 'string', default: '', help: 'S3 region; AWS_REGION overrides it' },
  'backup.s3.profile': { kind: 'string', default: '', help: 'AWS profile for S3 credentials; AWS_PROFILE overrides it' },
  'backup.s3.access_key_id': { kind: 'string', default: '', help: 'S3 access key id (prefer the AWS environment or a profile); AWS_ACCESS_KEY_ID overrides it' },
  'backup.s3.secret_access_key': { kind: 'string', default: '', help: 'S3 secret key (never printed; keep config.yaml 0600)', secret: true },
  'backup.s3.force_path_style': { kind: 'bool', default: false, help: 'path-style addressing even without a custom endpoint' },
  'backup.repo': { kind: 'string', default: '', help: '`backup run`: a snapshot into this backup repository (a directory or s3://bucket/prefix) instead of an archive to backup.to; also what `backup list` / `prune` act on when given no location (empty = archives)' },
  'backup.lock_wait': { kind: 'int', default: 300, min: 0, max: 86400, help: 'seconds `backup run` / `create --repo` / `prune --repo` wait for a conflicting repository lock (0 = exit 3 at once)' },
};

export interface GutsConfig {
  api: { addr: string };
  p2p: { addr: string; bootstrap_nodes: string[]; key_file: string };
  storage: { data_dir: string };
  metrics: { enabled: boolean; addr: string; textfile: string };
  logging: { level: string; format: string };
  /** sizes as written (parseSize), durations as written (parseDuration) */
  wal: { archive_command: string; restore_command: string; archive_dir: string; archive_timeout: string; segment_size: string; max_pending: string };
  backup: {
    dir: string;
    retention_days: number;
    level: number;
    to: string;
    kind: string;
    keep_last: number;
    keep_daily: number;
    keep_weekly: number;
    keep_within: string;
    pushgateway: string;
    textfile: string;
    notify_url: string;
    s3: { endpoint: string; region: string; profile: string; access_key_id: string; secret_access_key: string; force_path_style: boolean };
    repo: string;
    lock_wait: number;
  };
}

export interface LoadedConfig {
  path: string;
  exists: boolean;
  config: GutsConfig;
}

export interface ConfigSource {
  /** absolute path */
  file: string;
  /** named by --config or GUTS_CONFIG (must exist), or the default (may be absent) */
  namedBy: '--config' | 'GUTS_CONFIG' | 'default';
}

export function configSource(explicit?: string): ConfigSource {
  if (explicit) return { file: path.resolve(explicit), namedBy: '--config' };
  if (process.env.GUTS_CONFIG) return { file: path.resolve(process.env.GUTS_CONFIG), namedBy: 'GUTS_CONFIG' };
  return { file: DEFAULT_CONFIG_PATH, namedBy: 'default' };
}

export function configPath(explicit?: string): string {
  return configSource(explicit).file;
}

function missingConfig(src: ConfigSource, extra = ''): GutsError {
  return new GutsError(
    'GUTS_NOT_FOUND',
    `config file ${src.file} (named by ${src.namedBy}) does not exist; only the default ${DEFAULT_CONFIG_PATH} may be absent${extra}`,
    src.file,
  );
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(String(s).trim());
  if (!m) throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid duration "${s}" (use e.g. 30s, 10m, 1h)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!;
  return Math.round(Number(m[1]) * mult);
}

/** Bytes from `1048576`, `512KiB`, `16MiB`, `1GiB` (binary units; KB/MB/GB are decimal). */
export function parseSize(s: string | number): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/.exec(String(s).trim());
  if (!m) throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid size "${s}" (use e.g. 16MiB, 1GiB or bytes)`);
  const mult = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB, TiB: 1024 * 1024 * MiB, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[m[2] ?? 'B']!;
  return Math.floor(Number(m[1]) * mult);
}

/** A value that breaks a key's rule; callers say where it came from. */
class BadValue extends Error {}

function range(spec: KeySpec, unit = ''): string {
  return `from ${spec.min}${unit} to ${spec.max}${unit}${spec.note ? `; ${spec.note}` : ''}`;
}

/** A value checked and converted by its key's rule (load and set both use this). */
function coerce(spec: KeySpec, value: unknown): unknown {
  const v = coerceKind(spec, value);
  if (spec.check) {
    let why: string | void;
    try {
      why = spec.check(v as never);
    } catch (e) {
      why = (e as Error).message;
    }
    if (why) throw new BadValue(why);
  }
  return v;
}

function coerceKind(spec: KeySpec, value: unknown): unknown {
  const bad = (why: string) => new BadValue(why);
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string') throw bad(`expected a string, got ${JSON.stringify(value)}`);
      return value;
    case 'addr':
      if (typeof value !== 'string' || !/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$/.test(value)) throw bad(`expected host:port, got ${JSON.stringify(value)}`);
      if (Number(value.slice(value.lastIndexOf(':') + 1)) > 65535) throw bad(`port out of range in ${value}`);
      return value;
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === 'false') return value === 'true';
      throw bad(`expected true or false, got ${JSON.stringify(value)}`);
    case 'int': {
      const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
      const min = spec.min ?? 0;
      const max = spec.max ?? Number.MAX_SAFE_INTEGER;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
        throw bad(`expected an integer ${spec.max !== undefined ? range(spec) : `of at least ${min}`}, got ${JSON.stringify(value)}`);
      }
      return n;
    }
    case 'duration': {
      if (typeof value !== 'string' && typeof value !== 'number') throw bad('expected a duration like 60s');
      let ms: number;
      try {
        ms = parseDuration(String(value));
      } catch {
        throw bad(`invalid duration ${JSON.stringify(value)} (use e.g. 30s, 10m, 1h)`);
      }
      if ((spec.min !== undefined && ms < spec.min) || (spec.max !== undefined && ms > spec.max)) {
        throw bad(`expected a duration ${range({ ...spec, min: (spec.min ?? 0) / 1000, max: (spec.max ?? 0) / 1000 }, 's')}, got ${JSON.stringify(value)}`);
      }
      return String(value);
    }
    case 'size':
      if (typeof value !== 'string' && typeof value !== 'number') throw bad('expected a size like 16MiB');
      try {
        parseSize(value);
      } catch {
        throw bad(`invalid size ${JSON.stringify(value)} (use e.g. 16MiB, 1GiB or bytes)`);
      }
      return String(value);
    case 'strings':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw bad('expected a list of strings');
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.values!.includes(value)) throw bad(`expected one of ${spec.values!.join(', ')}, got ${JSON.stringify(value)}`);
      return value;
  }
}

function defaults(): GutsConfig {
  const c: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
    const parts = key.split('.');
    let o = c;
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[parts[parts.length - 1]] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  }
  return c as unknown as GutsConfig;
}

/** Validates a parsed YAML object; throws GUTS_INVALID_CONFIG naming the key. */
export function validateConfig(raw: unknown, file: string): GutsConfig {
  const cfg = defaults() as unknown as Record<string, Record<string, unknown>>;
  if (raw === null || raw === undefined) return cfg as unknown as GutsConfig;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: top level must be a mapping`, file);
  for (const [section, body] of Object.entries(raw as Record<string, unknown>)) {
    if (!(section in cfg)) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: unknown section "${section}"`, file);
    if (body === null) continue;
    if (typeof body !== 'object' || Array.isArray(body)) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: ${section}: must be a mapping`, file);
    const walk = (into: Record<string, unknown>, prefix: string, obj: Record<string, unknown>) => {
      for (const [name, value] of Object.entries(obj)) {
        const key = `${prefix}.${name}`;
        const spec = CONFIG_KEYS[key];
        // a nested section (backup.s3): a mapping of its own keys
        if (!spec && Object.keys(CONFIG_KEYS).some((k) => k.startsWith(key + '.'))) {
          if (value === null) continue;
          if (typeof value !== 'object' || Array.isArray(value)) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: ${key}: must be a mapping`, file);
          walk(into[name] as Record<string, unknown>, key, value as Record<string, unknown>);
          continue;
        }
        if (!spec) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: unknown key "${key}"`, file);
        try {
          into[name] = coerce(spec, value);
        } catch (e) {
          if (e instanceof BadValue) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: ${key}: ${e.message}`, file);
          throw e;
        }
      }
    };
    walk(cfg[section], section, body as Record<string, unknown>);
  }
  return cfg as unknown as GutsConfig;
}

export function loadConfig(explicitPath?: string): LoadedConfig {
  const src = configSource(explicitPath);
  const file = src.file;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (isMissing(e)) {
      if (src.namedBy !== 'default') throw missingConfig(src);
      return { path: file, exists: false, config: defaults() };
    }
    throw new GutsError('GUTS_INVALID_CONFIG', `cannot read config ${file}: ${(e as Error).message}`, file);
  }
  // Blank or only comments (GUTS_CONFIG=/dev/null, a fresh file): the
  // defaults, without loading the YAML parser (~25-70 ms of every CLI call).
  if (!/\S/.test(text.replace(/^[ \t]*#.*$/gm, ''))) return { path: file, exists: true, config: validateConfig(null, file) };
  const doc = yaml().parseDocument(text);
  if (doc.errors.length) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: ${doc.errors[0].message.split('\n')[0]}`, file);
  return { path: file, exists: true, config: validateConfig(doc.toJS(), file) };
}

/** Data dir by precedence: --data-dir, GUTS_DATA_DIR, storage.data_dir. */
export function resolveDataDir(cfg: GutsConfig, explicit?: string): string {
  return path.resolve(explicit || process.env.GUTS_DATA_DIR || cfg.storage.data_dir);
}

/** A value for display: secrets replaced by *** when set. */
export function maskSecrets(key: string, value: unknown): unknown {
  if (CONFIG_KEYS[key]?.secret) return value ? '***' : value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = maskSecrets(key ? `${key}.${k}` : k, v);
  return out;
}

export function getConfigValue(cfg: GutsConfig, key: string): unknown {
  if (!CONFIG_KEYS[key]) throw new GutsError('GUTS_INVALID_ARGUMENT', `unknown config key "${key}" (see guts-node config keys)`);
  return key.split('.').reduce<unknown>((o, p) => (o as Record<string, unknown>)[p], cfg);
}

/** Creates the missing parents of file, each 0755 (a config dir is read by the node's user; the umask is 077). */
function makeConfigDirs(file: string): void {
  const dir = path.dirname(file);
  let first: string | undefined;
  try {
    first = fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw fsError(e, 'cannot create config dir', dir);
  }
  if (!first) return;
  for (let d = dir; ; d = path.dirname(d)) {
    fs.chmodSync(d, 0o755);
    if (d === first || path.dirname(d) === d) break;
  }
}

/**
 * Set one key, keeping the file's comments and layout; atomic write, mode
 * kept. The value is checked by the same rules as a load (GUTS_INVALID_ARGUMENT
 * naming the key and what it allows; the file is left as it was). A missing
 * default file is created (the guide runs `config set` on a fresh machine); a
 * missing file named by --config / GUTS_CONFIG only with `create`.
 */
export function setConfigValue(explicitPath: string | undefined, key: string, rawValue: string, opts: { create?: boolean } = {}): { path: string; value: unknown; created: boolean } {
  const spec = CONFIG_KEYS[key];
  if (!spec) throw new GutsError('GUTS_INVALID_ARGUMENT', `unknown config key "${key}" (see guts-node config keys)`);
  const src = configSource(explicitPath);
  const file = src.file;
  let text = '';
  let mode = 0o640;
  let exists = true;
  try {
    const st = fs.statSync(file);
    // --config /dev/null ("no file") must never be renamed over
    if (!st.isFile()) throw new GutsError('GUTS_INVALID_ARGUMENT', `config file ${file} is not a regular file: config set cannot edit it`, file);
    text = fs.readFileSync(file, 'utf8');
    mode = st.mode & 0o7777;
  } catch (e) {
    if (e instanceof GutsError) throw e;
    if (!isMissing(e)) throw new GutsError('GUTS_INVALID_CONFIG', `cannot read config ${file}: ${(e as Error).message}`, file);
    if (src.namedBy !== 'default' && !opts.create) throw missingConfig(src, ' (config set --create creates it)');
    exists = false;
  }
  const doc = yaml().parseDocument(text);
  if (doc.errors.length) throw new GutsError('GUTS_INVALID_CONFIG', `${file}: ${doc.errors[0].message.split('\n')[0]}`, file);
  let value: unknown = rawValue;
  if (spec.kind === 'strings') value = rawValue === '' ? [] : rawValue.split(',').map((s) => s.trim());
  try {
    value = coerce(spec, value);
  } catch (e) {
    if (e instanceof BadValue) throw new GutsError('GUTS_INVALID_ARGUMENT', `${key}: ${e.message} (${file} not changed)`, file);
    throw e;
  }
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  doc.setIn(key.split('.'), value);
  validateConfig(doc.toJS(), file); // the whole file must stay valid
  if (!exists) makeConfigDirs(file);
  writeFileAtomic(file, doc.toString(), mode);
  return { path: file, value, created: !exists };
}
