// The node process: owns the open store and everything that touches it. The
// HTTP API (http.ts) and the admin socket (admin.ts) are thin front ends over
// the operations here; every write passes the WriteGate.
import * as fs from 'node:fs';

import { GutsConfig } from '../config';
import { GutsError } from '../errors';
import { dirSize } from '../fsutil';
import { LastBackup, MetricsSnapshot, readBackupRecords, readLastBackup, renderMetrics, writeBackupTextfileAsync, writeLastBackupAsync } from '../metrics';
import { Counts } from '../native';
import { compactStore, CompactStoreResult } from '../compact';
import { checkRepoName, dataDirLayout, GitObject, GutsStore, storeLockHolder } from '../store';
import { storePermissionWarnings } from '../store-permissions';
import { VERSION } from '../version';
import { WalArchiver, walSettings, WalStatus } from '../wal/archiver';
import { offlineWalStatus } from '../wal/status';
import { walLayout } from '../wal/state';
import { AdminServer } from './admin';
import { CheckpointManager, DEFAULT_LEASE_MS } from './checkpoints';
import { ApiServer, formatAddr, parseAddr } from './http';
import { Logger } from './log';
import { Maintenance } from './maintenance';
import { probeSocket, readPidFile, removePidFileIfOurs, writePidFile } from './runtime-files';
import { WriteGate } from './write-gate';

export interface NodeOptions {
  dataDir: string;
  config: GutsConfig;
  /** overrides config api.addr (tests use 127.0.0.1:0) */
  listen?: string;
  log: Logger;
  /** default checkpoint lease */
  leaseMs?: number;
  /** how long shutdown waits for in-flight requests before cutting connections */
  shutdownGraceMs?: number;
}

export type RefSpec = { name: string; target?: string; symbolic?: string; delete?: boolean };

export interface NodeStatusFull {
  pid: number;
  version: string;
  dataDir: string;
  apiAddr: string;
  startedAt: string;
  ready: boolean;
  maintenance: boolean;
  maintenanceUntil?: string;
  counts: Counts;
  consensus: { blocks: number; finalizedHeight: number };
  checkpoints: Array<{ id: string; dir: string; created: string; expires: string }>;
  writesInFlight: number;
  lastBackup: LastBackup | null;
}

const SIZE_CACHE_MS = 5000;

export class GutsNode {
  readonly dataDir: string;
  readonly log: Logger;
  readonly gate = new WriteGate();
  readonly maintenance: Maintenance;
  readonly checkpoints: CheckpointManager;
  readonly startedAt = Date.now();
  readonly httpRequests = new Map<string, number>();

  private store: GutsStore | null = null;
  private api: ApiServer | null = null;
  private metricsApi: ApiServer | null = null;
  private admin: AdminServer | null = null;
  /** recordBackup calls, one after the other (last-backup.json is read, merged and rewritten) */
  private recordQueue: Promise<void> = Promise.resolve();
  private state: 'new' | 'starting' | 'ready' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | null = null;
  private stoppedSettle!: (err?: unknown) => void;
  private readonly stopped = new Promise<void>((resolve, reject) => (this.stoppedSettle = (err) => (err ? reject(err) : resolve())));
  private knownRepos = new Set<string>();
  private repoCreates = new Map<string, Promise<void>>();
  private sizeCache: { at: number; value: { db: number; consensus: number; checkpoints: number } } | null = null;
  /** continuous WAL archiving (wal.archive_command / wal.archive_dir), null when off */
  wal: WalArchiver | null = null;
  apiAddr = '';

  constructor(private readonly opts: NodeOptions) {
    this.dataDir = opts.dataDir;
    this.log = opts.log;
    this.maintenance = new Maintenance(this.gate, () => this.store, this.log);
    this.checkpoints = new CheckpointManager(this.dataDir, () => this.store, this.log, opts.leaseMs ?? DEFAULT_LEASE_MS);
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  get isStopping(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
  }

  private starting: Promise<void> | null = null;

  /** Starts the node; calls onListening as soon as the HTTP port is bound (before the store opens). */
  start(onListening?: (url: string) => void): Promise<void> {
    if (this.state !== 'new') throw new GutsError('GUTS_INTERNAL', 'node already started');
    this.starting = this.doStart(onListening);
    return this.starting;
  }

  private async doStart(onListening?: (url: string) => void): Promise<void> {
    this.state = 'starting';
    const layout = dataDirLayout(this.dataDir);
    fs.mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });

    // Quick refusal before binding any port; the store lock below is the real arbiter.
    const holder = storeLockHolder(this.dataDir);
    if (holder) throw new GutsError('GUTS_LOCKED', `data dir ${this.dataDir} is in use by process ${holder} (a node is already running)`, this.dataDir);
    if ((await probeSocket(layout.socket)) === 'alive') {
      throw new GutsError('GUTS_LOCKED', `a node is already serving ${layout.socket} (pid file says ${readPidFile(this.dataDir) || 'nothing'})`, this.dataDir);
    }

    const cfg = this.opts.config;
    const apiAddr = parseAddr(this.opts.listen || cfg.api.addr);
    this.api = new ApiServer(this, { metrics: cfg.metrics.enabled && !cfg.metrics.addr, api: true });
    const bound = await this.api.listen(apiAddr);
    this.apiAddr = formatAddr(bound);
    this.log.info('listening', { api: `http://${this.apiAddr}` });
    onListening?.(`http://${this.apiAddr}`);
    try {
      if (cfg.metrics.enabled && cfg.metrics.addr) {
        this.metricsApi = new ApiServer(this, { metrics: true, api: false });
        const m = await this.metricsApi.listen(parseAddr(cfg.metrics.addr));
        this.log.info('metrics listening', { metrics: `http://${formatAddr(m)}/metrics` });
      }

      // DATA_DIR/wal/ must exist before the store opens: RocksDB then keeps every WAL file for the archiver.
      const walOn = walSettings(cfg);
      if (walOn) WalArchiver.prepare(this.dataDir);
      else if (fs.existsSync(walLayout(this.dataDir).dir)) {
        this.log.warn('WAL archiving is off but DATA_DIR/wal exists: obsolete WAL files are kept in db/archive until archiving is configured again (or wal/ is removed)', { dir: walLayout(this.dataDir).dir });
      }

      const t0 = performance.now();
      this.store = await GutsStore.open(this.dataDir);
      this.log.info('store open', { data_dir: this.dataDir, ms: Math.round(performance.now() - t0) });
      for (const w of storePermissionWarnings(this.dataDir)) this.log.warn(w);

      // We hold the store lock now, so a pid file or socket found here is a crashed node's.
      const oldPid = readPidFile(this.dataDir);
      if (oldPid && oldPid !== process.pid) this.log.warn('removing stale pid file', { pid: oldPid });
      if (fs.existsSync(layout.socket)) {
        this.log.warn('removing stale admin socket', { socket: layout.socket });
        fs.rmSync(layout.socket, { force: true });
      }
      writePidFile(this.dataDir);
      await this.checkpoints.removeLeftovers();
      for (const r of await this.store.listRepos()) this.knownRepos.add(r.name);

      if (walOn) {
        this.wal = new WalArchiver(this.dataDir, walOn, () => this.store, this.log, this.gate, cfg);
        await this.wal.start();
        this.checkpoints.walPosition = () => this.wal!.position();
      }

      this.admin = new AdminServer(this, layout.socket);
      await this.admin.listen();
      this.log.info('admin socket listening', { socket: layout.socket });
    } catch (e) {
      await this.teardown();
      this.state = 'stopped';
      throw e;
    }
    if (this.state === 'starting') {
      this.state = 'ready';
      this.log.info('node ready', { pid: process.pid, version: VERSION });
    }
  }

  /** Graceful stop: stop accepting, finish in-flight work, flush, close, remove pid file and socket. */
  stop(reason = 'shutdown requested'): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(reason);
    this.stopping.then(
      () => this.stoppedSettle(),
      (e) => this.stoppedSettle(e ?? new Error('stop failed')),
    );
    return this.stopping;
  }

  /** Resolves once stop() has finished. */
  whenStopped(): Promise<void> {
    return this.stopped;
  }

  private async doStop(reason: string): Promise<void> {
    this.state = 'stopping';
    this.log.info('shutting down', { reason });
    // A signal during start: let start finish (or fail) first, then stop what it built.
    await this.starting?.catch(() => undefined);
    const grace = this.opts.shutdownGraceMs ?? 10_000;
    // Held checkpoints stay on disk for their readers; sessions closing below must not delete them.
    this.checkpoints.stop();
    this.maintenance.stop();
    for (const c of this.compactions) c.abort();
    // Stop accepting; in-flight HTTP and admin requests run to completion (bounded by grace).
    const closing = Promise.all([this.api?.close(grace), this.metricsApi?.close(grace), this.admin?.close(grace)]);
    await closing;
    this.gate.close('node is shutting down');
    await this.gate.drained();
    // Every acknowledged write is in the WAL: the archiver closes its open segment into wal/pending/.
    await this.wal?.stop();
    await this.teardown();
    this.state = 'stopped';
    this.log.info('stopped');
  }

  private async teardown(): Promise<void> {
    await this.wal?.stop().catch(() => undefined);
    this.maintenance.stop();
    this.checkpoints.stop();
    await Promise.all([this.api?.close(0), this.metricsApi?.close(0), this.admin?.close(0)]);
    if (this.store) {
      const s = this.store;
      this.store = null;
      try {
        await s.flush();
      } catch (e) {
        this.log.error('flush at shutdown failed', { error: (e as Error).message });
      }
      await s.close();
      this.log.info('store closed');
      // The pid file is ours only once we held the store.
      removePidFileIfOurs(this.dataDir);
    }
  }

  /** `guts-node compact` through the node (src/compact.ts): writes go on meanwhile; a stopping node cancels it; refused in maintenance. */
  async compact(): Promise<CompactStoreResult> {
    // maintenance promises a quiet store (file-system snapshots): no SST rewrites either
    if (this.maintenance.active) throw new GutsError('GUTS_MAINTENANCE', 'the node is in maintenance mode: compact after `maintenance exit`');
    const abort = new AbortController();
    this.compactions.add(abort);
    try {
      return await compactStore(this.requireStore(), { signal: abort.signal });
    } finally {
      this.compactions.delete(abort);
    }
  }

  private readonly compactions = new Set<AbortController>();

  private requireStore(): GutsStore {
    if (!this.store || this.state === 'stopped') throw new GutsError('GUTS_CLOSED', 'the store is not open (node starting or stopping)');
    return this.store;
  }

  // ---- writes (all through the gate) ----

  /** HTTP batch push: objects into repo, then (optionally) refs that must point at stored objects. */
  async push(repo: string, objects: GitObject[], refs: RefSpec[] = []): Promise<{ ids: string[]; added: number }> {
    checkRepoName(repo);
    for (const r of refs) checkRefName(r.name);
    return this.gate.write(async () => {
      const store = this.requireStore();
      await this.ensureRepo(store, repo);
      const res = objects.length ? await store.putObjects(repo, objects) : { ids: [], added: 0 };
      if (refs.length) {
        const inBatch = new Set(res.ids);
        const targets = [...new Set(refs.filter((r) => r.target && !inBatch.has(r.target)).map((r) => r.target!))];
        const present = targets.length ? await store.hasObjects(targets) : [];
        const missing = targets.filter((_, i) => !present[i]);
        if (missing.length) throw new GutsError('GUTS_INVALID_ARGUMENT', `refs point to missing objects: ${missing.slice(0, 5).join(', ')}`);
        await store.setRefs(repo, refs);
      }
      return res;
    });
  }

  putObjects(repo: string | null, objects: GitObject[]): Promise<{ ids: string[]; added: number }> {
    return this.gate.write(() => this.requireStore().putObjects(repo, objects));
  }

  putRepo(repo: string, meta: Record<string, unknown> = {}): Promise<boolean> {
    return this.gate.write(async () => {
      const created = await this.requireStore().putRepo(repo, meta);
      this.knownRepos.add(repo);
      return created;
    });
  }

  setRefs(repo: string, refs: RefSpec[]): Promise<void> {
    return this.gate.write(() => this.requireStore().setRefs(repo, refs));
  }

  putBlocks(blocks: Array<{ height: number; data: Buffer }>, finalized = -1): Promise<void> {
    return this.gate.write(() => this.requireStore().putBlocks(blocks, finalized));
  }

  private async ensureRepo(store: GutsStore, repo: string): Promise<void> {
    if (this.knownRepos.has(repo)) return;
    let p = this.repoCreates.get(repo);
    if (!p) {
      // putRepo replaces metadata, so only ever call it for a repository we have not seen.
      p = store
        .putRepo(repo, { created: new Date().toISOString() })
        .then(() => void this.knownRepos.add(repo))
        .finally(() => this.repoCreates.delete(repo));
      this.repoCreates.set(repo, p);
    }
    await p;
  }

  // ---- reads ----

  getObject(id: string) {
    return this.requireStore().getObject(id);
  }

  getRefs(repo: string) {
    return this.requireStore().getRefs(repo);
  }

  counts(): Promise<Counts> {
    return this.requireStore().counts();
  }

  storeBytes(): { db: number; consensus: number; checkpoints: number } {
    const now = Date.now();
    if (this.sizeCache && now - this.sizeCache.at < SIZE_CACHE_MS) return this.sizeCache.value;
    const l = dataDirLayout(this.dataDir);
    const value = { db: dirSize(l.db), consensus: dirSize(l.consensus), checkpoints: dirSize(l.checkpoints) };
    this.sizeCache = { at: now, value };
    return value;
  }

  async status(): Promise<NodeStatusFull> {
    const store = this.requireStore();
    const [counts, consensus] = await Promise.all([store.counts(), store.consensusInfo()]);
    const m = this.maintenance.state();
    return {
      pid: process.pid,
      version: VERSION,
      dataDir: this.dataDir,
      apiAddr: this.apiAddr,
      startedAt: new Date(this.startedAt).toISOString(),
      ready: this.ready,
      maintenance: m.active,
      ...(m.until ? { maintenanceUntil: m.until } : {}),
      counts,
      consensus,
      checkpoints: this.checkpoints.list(),
      writesInFlight: this.gate.inFlight,
      lastBackup: readLastBackup(this.dataDir),
    };
  }

  /** `wal status`: the archiver's view, or state.json + pending/ when archiving is off. */
  walStatus(): WalStatus {
    return this.wal ? this.wal.status() : offlineWalStatus(this.dataDir);
  }

  /** `wal mark NAME`. */
  walMark(name: string) {
    if (!this.wal) throw new GutsError('GUTS_INVALID_ARGUMENT', 'WAL archiving is off (set wal.archive_command or wal.archive_dir and restart the node)');
    return this.wal.mark(name);
  }

  async metricsText(): Promise<string> {
    const s: MetricsSnapshot = {
      up: this.ready,
      maintenance: this.maintenance.active,
      lastBackup: readLastBackup(this.dataDir),
      consensusBackup: readBackupRecords(this.dataDir).consensus_only ?? null,
      checkpointsActive: this.checkpoints.active,
      checkpointsTotal: this.checkpoints.total,
      lastCheckpoint: this.checkpoints.last,
      writesInFlight: this.gate.inFlight,
      httpRequests: this.httpRequests,
      startedAt: this.startedAt,
      storeBytes: this.storeBytes(),
      ...(this.wal ? { wal: this.wal.status() } : {}),
    };
    if (this.store && this.ready) {
      [s.counts, s.consensus] = await Promise.all([this.store.counts(), this.store.consensusInfo()]);
    }
    return renderMetrics(s);
  }

  /** The files are written off the event loop: their fsyncs must not stall requests (hot backups record every run). */
  async recordBackup(info: LastBackup, wal?: { timeline?: unknown } | null): Promise<void> {
    if (wal && Number.isSafeInteger(wal.timeline)) await this.wal?.noteBaseBackup(wal.timeline as number);
    if (typeof info?.file !== 'string' || !Number.isFinite(info.size_bytes) || Number.isNaN(Date.parse(info.created))) {
      throw new GutsError('GUTS_INVALID_ARGUMENT', 'recordBackup needs {file, size_bytes, created (ISO time), kind}');
    }
    const rec: LastBackup = {
      file: info.file,
      size_bytes: info.size_bytes,
      created: info.created,
      kind: String(info.kind ?? 'full'),
      ...(info.checksum ? { checksum: String(info.checksum) } : {}),
    };
    // read-modify-write of the per-kind records: one at a time
    const write = this.recordQueue.then(() => writeLastBackupAsync(this.dataDir, rec));
    this.recordQueue = write.catch(() => undefined);
    await write;
    const textfile = this.opts.config.metrics.textfile;
    if (textfile) {
      try {
        await writeBackupTextfileAsync(textfile, readBackupRecords(this.dataDir));
      } catch (e) {
        this.log.warn('cannot write metrics textfile', { file: textfile, error: (e as Error).message });
      }
    }
    this.log.info('backup recorded', { file: rec.file, size_bytes: rec.size_bytes, kind: rec.kind });
  }
}

function checkRefName(name: unknown): void {
  if (typeof name !== 'string' || !(name === 'HEAD' || /^refs\/[^\0\s]+$/.test(name)) || name.includes('..') || name.length > 1024) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid ref name ${JSON.stringify(name)} (expected HEAD or refs/...)`);
  }
}
