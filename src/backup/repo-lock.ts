// Repository locks (docs/FORMAT.md "Backup repository: locking"), restic's
// scheme on any location (a local dir or S3, no conditional writes needed):
// `backup create` holds a shared lock, `backup prune` an exclusive one, each
// an object locks/<kind>-<host>-<pid>-<random>.json = {kind, hostname, pid,
// created, refreshed}. To lock: look for a conflicting live lock, write ours,
// look again (two processes that raced both see each other and both back
// off). On a conflict the caller waits up to `waitSeconds` (the CLI's
// --lock-wait, default 300 s; 0 = no wait), polling with a doubling backoff
// (250 ms up to 5 s, jittered) and judging staleness afresh at each poll, then
// GUTS_REPO_LOCKED (exit 3). A lock is stale when its
// process is gone (same host) or it was not refreshed for LOCK_STALE_MS
// (another host; holders refresh every LOCK_REFRESH_MS): stale locks are
// removed by whoever finds them. So prune never sweeps while a create is
// uploading objects no snapshot references yet.
import * as crypto from 'node:crypto';
import * as os from 'node:os';

import { isoSeconds } from '../backup';
import { GutsError } from '../errors';
import { isProcessAlive } from '../fsutil';
import { Location } from '../location';

export const LOCK_REFRESH_MS = 5 * 60e3;
export const LOCK_STALE_MS = 30 * 60e3;

const POLL_FIRST_MS = 250;
const POLL_MAX_MS = 5_000;

export type LockKind = 'create' | 'prune';

export interface LockInfo {
  key: string;
  kind: LockKind;
  hostname: string;
  pid: number;
  created: string;
  refreshed: string;
}

const LOCK_KEY = /^locks\/(create|prune)-[^/]+\.json$/;

export function lockIsStale(l: LockInfo, now = Date.now()): boolean {
  if (l.hostname === os.hostname() && !isProcessAlive(l.pid)) return true;
  const t = Date.parse(l.refreshed);
  return !Number.isFinite(t) || now - t > LOCK_STALE_MS;
}

/** Every lock object, parsed (an unreadable one counts as stale by time). */
export async function listLocks(loc: Location): Promise<LockInfo[]> {
  const out: LockInfo[] = [];
  for (const o of await loc.list('locks/')) {
    const m = LOCK_KEY.exec(o.key);
    if (!m) continue;
    const buf = await loc.get(o.key);
    if (!buf) continue;
    let l: Partial<LockInfo> = {};
    try {
      l = JSON.parse(buf.toString('utf8')) as LockInfo;
    } catch {
      /* half-written by a dead process on a store without atomic puts: judged by its mtime */
      l = { refreshed: o.mtime.toISOString() };
    }
    out.push({ key: o.key, kind: m[1] as LockKind, hostname: String(l.hostname ?? ''), pid: Number(l.pid ?? 0), created: String(l.created ?? ''), refreshed: String(l.refreshed ?? o.mtime.toISOString()) });
  }
  return out;
}

export interface RepoLock {
  key: string;
  /** stale locks of dead processes removed while locking */
  removedStale: string[];
  release(): Promise<void>;
}

const conflicts = (mine: LockKind, other: LockInfo) => mine === 'prune' || other.kind === 'prune';

function describe(l: LockInfo): string {
  return `${l.kind} lock of process ${l.pid} on ${l.hostname || '?'} (since ${l.created || '?'})`;
}

export interface LockWait {
  /** how long to wait for a conflicting live lock to go (default 0: fail at once) */
  waitSeconds?: number;
  /** called once, when the wait starts (the CLI prints it on stderr) */
  onWait?: (line: string) => void;
  /** aborts the wait with GUTS_CANCELLED */
  signal?: AbortSignal;
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new GutsError('GUTS_CANCELLED', 'interrupted while waiting for the repository lock'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new GutsError('GUTS_CANCELLED', 'interrupted while waiting for the repository lock'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Takes a `kind` lock, waiting up to wait.waitSeconds for conflicting live locks to go. */
export async function acquireLock(loc: Location, kind: LockKind, wait: LockWait = {}): Promise<RepoLock> {
  const waitMs = Math.max(0, (wait.waitSeconds ?? 0) * 1000);
  const deadline = Date.now() + waitMs;
  const removedStale: string[] = [];
  let delay = POLL_FIRST_MS;
  let noted = false;
  for (;;) {
    try {
      return await tryLock(loc, kind, removedStale);
    } catch (e) {
      if (!(e instanceof GutsError) || e.code !== 'GUTS_REPO_LOCKED') throw e;
      const left = deadline - Date.now();
      if (left <= 0) {
        if (waitMs > 0) throw new GutsError('GUTS_REPO_LOCKED', `${e.message.replace(/; try again once it finished$/, '')}; still locked after waiting ${Math.round(waitMs / 1000)} s (--lock-wait)`, e.path);
        throw e;
      }
      if (!noted) {
        noted = true;
        wait.onWait?.(`${e.message.replace(/; try again once it finished$/, '')}; waiting up to ${Math.round(waitMs / 1000)} s for it (--lock-wait)`);
      }
      await pause(Math.min(left, delay * (0.75 + Math.random() / 2)), wait.signal);
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }
}

async function tryLock(loc: Location, kind: LockKind, removedStale: string[]): Promise<RepoLock> {
  const check = async (ownKey?: string) => {
    for (const l of await listLocks(loc)) {
      if (l.key === ownKey) continue;
      if (lockIsStale(l)) {
        await loc.delete(l.key);
        removedStale.push(loc.urlOf(l.key));
        continue;
      }
      if (conflicts(kind, l)) {
        if (ownKey) await loc.delete(ownKey);
        throw new GutsError('GUTS_REPO_LOCKED', `${loc.url} is locked: ${describe(l)} (${loc.urlOf(l.key)}); try again once it finished`, loc.urlOf(l.key));
      }
    }
  };
  await check();
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64) || 'host';
  const key = `locks/${kind}-${host}-${process.pid}-${crypto.randomBytes(4).toString('hex')}.json`;
  const created = isoSeconds();
  const body = (refreshed: string) => JSON.stringify({ kind, hostname: os.hostname(), pid: process.pid, created, refreshed }) + '\n';
  await loc.put(key, body(created));
  await check(key);
  let released = false;
  const timer = setInterval(() => {
    if (!released) loc.put(key, body(isoSeconds()), { overwrite: true }).catch(() => undefined);
  }, LOCK_REFRESH_MS);
  timer.unref();
  return {
    key,
    removedStale,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await loc.delete(key);
    },
  };
}
