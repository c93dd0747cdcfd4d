// What `backup run` tells the outside world: metrics pushed to a Prometheus
// Pushgateway (POST /metrics/job/guts-backup, as the guide's curl lines do)
// and/or merged atomically into a node_exporter textfile, and the JSON result
// POSTed to a notification URL. None of these ever fails the backup itself:
// each returns what happened, the caller logs it.
//
// Metric names follow the node's rule for kinds: the unlabelled series are
// the last full/hot backup; a consensus-only run writes kind="consensus-only"
// series (pushed under the grouping key kind=consensus-only, so a POST for
// one kind never replaces the other's samples).
import * as fs from 'node:fs';

import { writeFileAtomicAsync } from '../fsutil';

export const PUSH_JOB = 'guts-backup';

export interface RunMetrics {
  kind: string;
  /** set on success only: a failed run leaves the last success's time and size in place */
  lastBackupTimestamp?: number;
  sizeBytes?: number;
  durationSeconds?: number;
  lastSuccess: 0 | 1;
  /** undefined when verify did not run */
  verifyLastSuccess?: 0 | 1;
}

const HELP: Record<string, string> = {
  guts_last_backup_timestamp: 'Unix time of the last successful backup.',
  guts_backup_size_bytes: 'Size of the last successful backup archive.',
  guts_backup_duration_seconds: 'Wall time of the last successful backup run.',
  guts_backup_last_success: 'Whether the last backup run succeeded (1) or failed (0).',
  guts_backup_verify_last_success: 'Whether the last backup verification succeeded (1) or failed (0).',
};

function samples(m: RunMetrics): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  if (m.lastBackupTimestamp !== undefined) out.push(['guts_last_backup_timestamp', m.lastBackupTimestamp]);
  if (m.sizeBytes !== undefined) out.push(['guts_backup_size_bytes', m.sizeBytes]);
  if (m.durationSeconds !== undefined) out.push(['guts_backup_duration_seconds', m.durationSeconds]);
  out.push(['guts_backup_last_success', m.lastSuccess]);
  if (m.verifyLastSuccess !== undefined) out.push(['guts_backup_verify_last_success', m.verifyLastSuccess]);
  return out;
}

const labelsOf = (kind: string) => (kind === 'consensus-only' ? '{kind="consensus-only"}' : '');

/** Prometheus text for a push (the grouping key carries the kind). */
export function pushBody(m: RunMetrics): string {
  return samples(m)
    .map(([name, v]) => `# HELP ${name} ${HELP[name]}\n# TYPE ${name} gauge\n${name} ${v}\n`)
    .join('');
}

/** A URL without user:password, for logs and results. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '***';
      u.password = '';
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//***@');
  }
}

export function pushUrl(base: string, kind: string): string {
  const b = base.replace(/\/+$/, '');
  const group = /\/metrics\/job\//.test(b) ? b : `${b}/metrics/job/${PUSH_JOB}`;
  return kind === 'consensus-only' ? `${group}/kind/consensus-only` : group;
}

export interface Delivery {
  ok: boolean;
  url?: string;
  file?: string;
  error?: string;
}

async function post(url: string, body: string, contentType: string): Promise<Delivery> {
  const shown = redactUrl(url);
  try {
    const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': contentType }, signal: AbortSignal.timeout(10_000) });
    await r.arrayBuffer().catch(() => undefined);
    if (!r.ok) return { ok: false, url: shown, error: `HTTP ${r.status} ${r.statusText}`.trim() };
    return { ok: true, url: shown };
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, url: shown, error: cause?.code ?? cause?.message ?? (e as Error).message };
  }
}

export function pushMetrics(base: string, m: RunMetrics): Promise<Delivery> {
  return post(pushUrl(base, m.kind), pushBody(m), 'text/plain; version=0.0.4');
}

/**
 * Merges this run's samples into a node_exporter textfile: samples of the
 * other kind (and any other metric in the file) are kept; written to a temp
 * file and renamed, as node_exporter requires.
 */
export async function writeTextfile(file: string, m: RunMetrics): Promise<Delivery> {
  const ours = new Map(samples(m).map(([n, v]) => [`${n}${labelsOf(m.kind)}`, v]));
  const series = new Map<string, string>(); // "name{labels}" -> value text
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (s) series.set(s[1], s[2]);
    }
  } catch {
    /* no file yet */
  }
  for (const [k, v] of ours) series.set(k, String(v));
  const byName = new Map<string, string[]>();
  for (const [k, v] of [...series.entries()].sort()) {
    const name = k.replace(/\{.*$/, '');
    (byName.get(name) ?? byName.set(name, []).get(name)!).push(`${k} ${v}`);
  }
  let text = '';
  for (const [name, lines] of byName) text += `${HELP[name] ? `# HELP ${name} ${HELP[name]}\n` : ''}# TYPE ${name} gauge\n${lines.join('\n')}\n`;
  try {
    await writeFileAtomicAsync(file, text, 0o644);
    return { ok: true, file };
  } catch (e) {
    return { ok: false, file, error: (e as Error).message };
  }
}

export function notify(url: string, result: unknown): Promise<Delivery> {
  return post(url, JSON.stringify(result) + '\n', 'application/json');
}
