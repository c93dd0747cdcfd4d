// Typed store API: the node daemon links this; the CLI uses it when no node runs.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsError } from './errors';
import { Counts, native, NativeStore, ObjectType, ObjectTypeName, RefValue, StoreOptions, StoredObject, TypeNames } from './native';

export const REPO_NAME = /^[A-Za-z0-9._-]{1,100}\/[A-Za-z0-9._-]{1,100}$/;

export function checkRepoName(repo: string): string {
  if (!REPO_NAME.test(repo) || repo.includes('..')) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid repository name "${repo}" (expected owner/name)`);
  }
  return repo;
}

export interface GitObject {
  type: ObjectTypeName;
  data: Buffer;
}

export interface RepoInfo {
  name: string;
  meta: Record<string, unknown>;
}

/** Layout of a data dir (see README "Data dir"). */
export function dataDirLayout(dataDir: string) {
  return {
    db: path.join(dataDir, 'db'),
    consensus: path.join(dataDir, 'consensus'),
    checkpoints: path.join(dataDir, 'checkpoints'),
    socket: path.join(dataDir, 'admin.sock'),
    pidFile: path.join(dataDir, 'node.pid'),
    lastBackup: path.join(dataDir, 'last-backup.json'),
  };
}

/** pid holding the data dir's RocksDB lock (0 = free; may be this process). Read from /proc/locks, never by opening LOCK. */
export function storeLockHolder(dataDir: string): number {
  const l = dataDirLayout(dataDir);
  return native.lockHolder(path.join(l.db, 'LOCK')) || native.lockHolder(path.join(l.consensus, 'LOCK'));
}

export class GutsStore {
  readonly dataDir: string;
  readonly native: NativeStore;

  private constructor(dataDir: string, n: NativeStore) {
    this.dataDir = dataDir;
    this.native = n;
  }

  static async open(dataDir: string, options: StoreOptions = {}): Promise<GutsStore> {
    const dir = path.resolve(dataDir);
    if (options.readOnly) {
      // RocksDB read-only opens take no lock: refuse a store a live process holds.
      const holder = storeLockHolder(dir);
      if (holder && holder !== process.pid) throw new GutsError('GUTS_LOCKED', `store ${dir} is locked by process ${holder} (is the node running?)`, dir);
      if (!fs.existsSync(path.join(dir, 'db', 'CURRENT'))) {
        throw new GutsError('GUTS_NOT_FOUND', `no store in ${dir} (missing db/CURRENT)`, dir);
      }
    }
    const n = new native.Store(dir, options);
    await n.open();
    return new GutsStore(dir, n);
  }

  close(): Promise<void> {
    return this.native.close();
  }

  /** Atomic batch put; returns ids (hex) in input order and how many were new. */
  async putObjects(repo: string | null, objects: GitObject[]): Promise<{ ids: string[]; added: number }> {
    if (repo) checkRepoName(repo);
    const types = new Uint8Array(objects.length);
    const bodies: Buffer[] = new Array(objects.length);
    objects.forEach((o, i) => {
      const t = ObjectType[o.type];
      if (!t) throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid object type ${String(o.type)}`);
      types[i] = t;
      bodies[i] = o.data;
    });
    const r = await this.native.putObjects(repo ?? '', types, bodies);
    const ids: string[] = [];
    for (let i = 0; i < objects.length; i++) ids.push(r.ids.subarray(i * 20, i * 20 + 20).toString('hex'));
    return { ids, added: r.added };
  }

  async getObject(id: string): Promise<(GitObject & { id: string }) | null> {
    const o = await this.native.getObject(idBuffer(id));
    return o ? toGitObject(o) : null;
  }

  async hasObjects(ids: string[]): Promise<boolean[]> {
    return this.native.hasObjects(ids.map(idBuffer));
  }

  /** Pages through a repository's objects (or all objects with repo = null). */
  async *objects(repo: string | null, pageSize = 512): AsyncGenerator<GitObject & { id: string }> {
    let after: Buffer | null = null;
    for (;;) {
      const page = await this.native.scanObjects(repo ?? '', after, pageSize);
      for (const o of page) yield toGitObject(o);
      if (page.length < pageSize) return;
      after = page[page.length - 1].id;
    }
  }

  async putRepo(repo: string, meta: Record<string, unknown> = {}): Promise<boolean> {
    return this.native.putRepo(checkRepoName(repo), JSON.stringify(meta));
  }

  async listRepos(): Promise<RepoInfo[]> {
    return (await this.native.listRepos()).map((r) => ({ name: r.name, meta: JSON.parse(r.meta) as Record<string, unknown> }));
  }

  async setRefs(repo: string, refs: Array<{ name: string; target?: string; symbolic?: string; delete?: boolean }>): Promise<void> {
    checkRepoName(repo);
    await this.native.updateRefs(
      repo,
      refs.map((r) => ({ name: r.name, target: r.target ? idBuffer(r.target) : undefined, symbolic: r.symbolic, delete: r.delete })),
    );
  }

  async getRefs(repo: string): Promise<Array<{ name: string; target?: string; symbolic?: string }>> {
    return (await this.native.getRefs(checkRepoName(repo))).map((r: RefValue) => ({
      name: r.name,
      ...(r.symbolic ? { symbolic: r.symbolic } : { target: r.target!.toString('hex') }),
    }));
  }

  counts(): Promise<Counts> {
    return this.native.counts();
  }

  putBlocks(blocks: Array<{ height: number; data: Buffer }>, finalized = -1): Promise<void> {
    return this.native.putBlocks(
      blocks.map((b) => b.height),
      blocks.map((b) => b.data),
      finalized,
    );
  }

  getBlock(height: number): Promise<Buffer | null> {
    return this.native.getBlock(height);
  }

  consensusInfo() {
    return this.native.consensusInfo();
  }

  /** Flush memtables and sync WALs (maintenance mode, before fs snapshots). */
  flush(): Promise<void> {
    return this.native.flush();
  }
}

export function idBuffer(id: string): Buffer {
  if (!/^[0-9a-f]{40}$/.test(id)) throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid object id "${id}"`);
  return Buffer.from(id, 'hex');
}

function toGitObject(o: StoredObject): GitObject & { id: string } {
  const type = TypeNames[o.type];
  if (!type) throw new GutsError('GUTS_CORRUPT', `object ${o.id.toString('hex')} has invalid type byte ${o.type}`);
  return { id: o.id.toString('hex'), type, data: o.data };
}

/** git object id of (type, body), computed natively. */
export function gitObjectId(type: ObjectTypeName, body: Buffer): string {
  return native.gitHash(ObjectType[type], body).toString('hex');
}
