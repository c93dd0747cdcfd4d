// Where archived WAL files (segments `*.gwal`, timeline histories
// `*.history`) live, and the two ways of reaching them:
// - a WalLocation: the built-in target behind `wal.archive_dir` (a local
//   directory here; other schemes plug in with registerWalLocationScheme, e.g.
//   `s3://bucket/prefix`), used by `guts-node wal push/fetch` and directly by
//   restore and `wal verify`;
// - the operator's shell commands `wal.archive_command` / `wal.restore_command`
//   (src/wal/command.ts), which take precedence when set.
// Archived names are never replaced: a re-push of identical bytes succeeds
// (an archiver that died after the copy retries it), different bytes under
// an existing name fail loudly (a second node or a restored store writing into
// the same history would otherwise destroy it).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { GutsConfig } from '../config';
import { fsError, GutsError } from '../errors';
import { fsyncDir, tempPathFor } from '../fsutil';
import { describeWalCommandFailure, runWalCommand, WalCommandOptions } from './command';

/** Archived file names: segments and histories, never a path, never hidden. */
export const ARCHIVE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;

export function checkArchiveName(name: string): string {
  if (!ARCHIVE_NAME.test(name) || name.includes('..')) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid WAL archive name ${JSON.stringify(name)} (a plain file name such as 00000001-0000000000000007.gwal)`);
  }
  return name;
}

export type PutResult = 'stored' | 'unchanged';

/** An archive location. Implementations must make `put` atomic and durable and never replace a different file. */
export interface WalLocation {
  /** printable location, e.g. /backup/wal or s3://bucket/prefix */
  readonly url: string;
  /** stores the file at srcPath under name: 'unchanged' when identical bytes are already there; GUTS_EXISTS when different ones are */
  put(name: string, srcPath: string): Promise<PutResult>;
  /** copies name to destPath (atomically: complete or absent); false when the archive has no such name */
  get(name: string, destPath: string): Promise<boolean>;
  /** archived names (no temp files), sorted; optional for stores that cannot list cheaply */
  list?(): Promise<string[]>;
}

type LocationFactory = (spec: string, cfg?: GutsConfig) => WalLocation;
const schemes = new Map<string, LocationFactory>();

/** Plugs in a URL scheme for `wal.archive_dir` (e.g. 's3'). */
export function registerWalLocationScheme(scheme: string, factory: LocationFactory): void {
  schemes.set(scheme.toLowerCase(), factory);
}

/** A location from `wal.archive_dir` / `--archive-dir`: a local directory, file://, s3:// (backup.s3.* and the AWS environment), or a registered scheme. */
export function openWalLocation(spec: string, cfg?: GutsConfig): WalLocation {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(spec);
  if (m) {
    const scheme = m[1].toLowerCase();
    if (scheme === 'file') return new DirLocation(decodeURIComponent(spec.slice('file://'.length)));
    // loaded on use: the SDK costs ~150 ms, and only an s3:// archive needs it
    if (scheme === 's3' && !schemes.has('s3')) registerWalLocationScheme('s3', (require('../location/wal') as typeof import('../location/wal')).s3WalLocation);
    const factory = schemes.get(scheme);
    if (!factory) throw new GutsError('GUTS_INVALID_CONFIG', `wal.archive_dir ${spec}: unsupported scheme "${scheme}://"`);
    return factory(spec, cfg);
  }
  if (!spec) throw new GutsError('GUTS_INVALID_CONFIG', 'wal.archive_dir is not set (set it, or pass --archive-dir)');
  return new DirLocation(spec);
}

async function sha256OfFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Copies src to a fresh temp file beside dst and fsyncs it; returns the temp path. */
async function copyToTemp(src: string, dstDir: string, name: string): Promise<string> {
  try {
    await fs.promises.access(src, fs.constants.R_OK);
  } catch (e) {
    throw fsError(e, 'cannot read', src);
  }
  const tmp = tempPathFor(path.join(dstDir, name));
  try {
    await fs.promises.copyFile(src, tmp, fs.constants.COPYFILE_EXCL);
    const fh = await fs.promises.open(tmp, 'r+');
    try {
      await fh.chmod(0o600);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return tmp;
  } catch (e) {
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw fsError(e, 'cannot write', tmp);
  }
}

/** The built-in target: one flat local directory (mode 0700), files 0600. */
export class DirLocation implements WalLocation {
  readonly dir: string;
  readonly url: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    this.url = this.dir;
  }

  async put(name: string, srcPath: string): Promise<PutResult> {
    checkArchiveName(name);
    const dst = path.join(this.dir, name);
    try {
      await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw fsError(e, 'cannot create WAL archive dir', this.dir);
    }
    const existing = await this.compareExisting(name, srcPath);
    if (existing) return existing;
    const tmp = await copyToTemp(srcPath, this.dir, name);
    try {
      // link() never replaces: two pushers racing for one name cannot both win.
      await fs.promises.link(tmp, dst);
    } catch (e) {
      await fs.promises.unlink(tmp).catch(() => undefined);
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        const again = await this.compareExisting(name, srcPath);
        if (again) return again;
      }
      throw fsError(e, 'cannot archive', dst);
    }
    await fs.promises.unlink(tmp).catch(() => undefined);
    fsyncDir(this.dir);
    return 'stored';
  }

  /** 'unchanged' when name holds srcPath's bytes, null when absent; GUTS_EXISTS when different. */
  private async compareExisting(name: string, srcPath: string): Promise<PutResult | null> {
    const dst = path.join(this.dir, name);
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(dst);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fsError(e, 'cannot stat', dst);
    }
    let src: fs.Stats;
    try {
      src = await fs.promises.stat(srcPath);
    } catch (e) {
      throw fsError(e, 'cannot read', srcPath);
    }
    if (st.size === src.size && (await sha256OfFile(dst)) === (await sha256OfFile(srcPath))) {
      // The earlier push may have died between link() and the directory fsync.
      fsyncDir(this.dir);
      return 'unchanged';
    }
    throw new GutsError('GUTS_EXISTS', `${dst} already exists with different contents than ${srcPath} (an archived WAL file is never replaced; is another node archiving into ${this.dir}?)`, dst);
  }

  async get(name: string, destPath: string): Promise<boolean> {
    checkArchiveName(name);
    const src = path.join(this.dir, name);
    const dest = path.resolve(destPath);
    try {
      await fs.promises.access(src);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw fsError(e, 'cannot read', src);
    }
    const tmp = await copyToTemp(src, path.dirname(dest), path.basename(dest));
    try {
      await fs.promises.rename(tmp, dest);
    } catch (e) {
      await fs.promises.unlink(tmp).catch(() => undefined);
      throw fsError(e, 'cannot write', dest);
    }
    return true;
  }

  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fsError(e, 'cannot list WAL archive', this.dir);
    }
    return names.filter((n) => ARCHIVE_NAME.test(n)).sort();
  }
}

/**
 * How a restore or `wal verify` reads the archive: `wal.restore_command`
 * when set (exit 0 = fetched, exit 1 = not in the archive as PostgreSQL's
 * restore_command, anything else stops with GUTS_IO naming the command),
 * else the built-in location of `wal.archive_dir`.
 */
export interface WalSource {
  readonly describe: string;
  fetch(name: string, destPath: string): Promise<boolean>;
  /** names in the archive, when the location can list them */
  list?(): Promise<string[]>;
}

/** How a restored store's history file is archived: `wal.archive_command`, else the built-in location. */
export interface WalSink {
  readonly describe: string;
  push(srcPath: string): Promise<void>;
}

export interface WalEndpointOptions {
  /** overrides wal.archive_dir */
  archiveDir?: string;
  commandOptions?: WalCommandOptions;
}

export function walSource(cfg: GutsConfig, opts: WalEndpointOptions = {}): WalSource {
  const wal = cfg.wal;
  const dir = opts.archiveDir ?? wal.archive_dir;
  if (wal.restore_command && opts.archiveDir === undefined) {
    const template = wal.restore_command;
    const listing = dir ? openWalLocation(dir, cfg) : undefined;
    return {
      describe: `wal.restore_command \`${template}\``,
      async fetch(name, destPath) {
        checkArchiveName(name);
        const dest = path.resolve(destPath);
        const r = await runWalCommand(template, { p: dest, f: name }, path.dirname(dest), opts.commandOptions);
        if (r.ok) {
          if (!fs.existsSync(dest)) throw new GutsError('GUTS_IO', `wal.restore_command \`${r.command}\` exited 0 but did not create ${dest}`, dest);
          return true;
        }
        if (r.exit_code === 1) return false;
        throw new GutsError('GUTS_IO', `cannot fetch ${name}: wal.restore_command ${describeWalCommandFailure(r)}`, dest);
      },
      ...(listing?.list ? { list: () => listing.list!() } : {}),
    };
  }
  const loc = openWalLocation(dir, cfg);
  return { describe: loc.url, fetch: (name, destPath) => loc.get(name, destPath), ...(loc.list ? { list: () => loc.list!() } : {}) };
}

export function walSink(cfg: GutsConfig, opts: WalEndpointOptions = {}): WalSink {
  const wal = cfg.wal;
  if (wal.archive_command && opts.archiveDir === undefined) {
    const template = wal.archive_command;
    return {
      describe: `wal.archive_command \`${template}\``,
      async push(srcPath) {
        const p = path.resolve(srcPath);
        const r = await runWalCommand(template, { p, f: path.basename(p) }, path.dirname(p), opts.commandOptions);
        if (!r.ok) throw new GutsError('GUTS_IO', `cannot archive ${p}: wal.archive_command ${describeWalCommandFailure(r)}`, p);
      },
    };
  }
  const loc = openWalLocation(opts.archiveDir ?? wal.archive_dir, cfg);
  return {
    describe: loc.url,
    async push(srcPath) {
      await loc.put(path.basename(srcPath), srcPath);
    },
  };
}
