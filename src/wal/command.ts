// Running `wal.archive_command` / `wal.restore_command` with PostgreSQL's
// semantics: `%p` = absolute path of the segment (or of the destination of a
// fetch), `%f` = its file name, `%%` = a literal `%`; the expanded line runs
// under `/bin/sh -c` with the segment's directory as working directory, so a
// command written as `aws s3 cp %f s3://bucket/%f` finds the file by its name.
// Like PostgreSQL, the values are substituted as they are (no shell quoting):
// quote them in the template (`cp "%p" "/archive/%f"`) when a path may hold
// spaces. Exit status 0 = done; the caller decides what any other status means
// (the archiver retries, a restore treats exit 1 as "not in the archive").
import { spawn } from 'node:child_process';
import * as path from 'node:path';

import { GutsError } from '../errors';

export interface WalCommandArgs {
  /** absolute path (%p); made absolute against cwd when relative */
  p: string;
  /** file name (%f) */
  f: string;
}

export interface WalCommandOptions {
  /** kill the command (its whole process group) after this long; default none */
  timeoutMs?: number;
  /** abort: the process group gets SIGTERM (then SIGKILL after 5 s) */
  signal?: AbortSignal;
  /** extra environment for the command */
  env?: NodeJS.ProcessEnv;
  /** bytes of stderr kept (the last ones; default 8 KiB) */
  maxStderrBytes?: number;
}

export interface WalCommandResult {
  /** exit status 0 */
  ok: boolean;
  /** the expanded command line that ran */
  command: string;
  cwd: string;
  /** exit status, null when killed by a signal */
  exit_code: number | null;
  /** the signal that ended it (timeout or abort included), else null */
  signal: NodeJS.Signals | null;
  timed_out: boolean;
  /** the command's stderr (its last maxStderrBytes bytes), trimmed */
  stderr: string;
  /** stderr was longer than what is kept */
  stderr_truncated: boolean;
  elapsed_seconds: number;
}

const DEFAULT_MAX_STDERR = 8 << 10;

/**
 * Expands %p, %f and %%. Any other `%x` (or a lone trailing `%`) is refused:
 * a typo such as `%F` would otherwise reach the archive as a literal name.
 */
export function expandWalCommand(template: string, args: WalCommandArgs): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const n = template[++i];
    if (n === 'p') out += args.p;
    else if (n === 'f') out += args.f;
    else if (n === '%') out += '%';
    else {
      throw new GutsError(
        'GUTS_INVALID_CONFIG',
        `WAL command ${JSON.stringify(template)}: unknown placeholder "%${n ?? ''}" at offset ${i - 1} (use %p = path, %f = file name, %% = %)`,
      );
    }
  }
  return out;
}

/** Throws GUTS_INVALID_CONFIG when a template has an unknown placeholder (for `config set`). */
export function checkWalCommandTemplate(template: string): void {
  expandWalCommand(template, { p: '/x', f: 'x' });
}

/** A one-line description of a failed run, for logs and error messages. */
export function describeWalCommandFailure(r: WalCommandResult): string {
  const how = r.timed_out ? 'timed out' : r.signal ? `was killed by ${r.signal}` : `exited with status ${r.exit_code}`;
  const err = r.stderr ? `: ${r.stderr.split('\n').filter(Boolean).slice(-1)[0]}` : '';
  return `command \`${r.command}\` ${how}${err}`;
}

/**
 * Runs one WAL command: `/bin/sh -c <expanded>` in cwd (default: the directory
 * of args.p), stdin closed, stdout discarded, stderr captured (bounded). Never
 * rejects for the command's own failure: the status is in the result. Rejects
 * with GUTS_INVALID_CONFIG for a bad template, GUTS_IO when sh cannot start.
 */
export async function runWalCommand(template: string, args: WalCommandArgs, cwd?: string, opts: WalCommandOptions = {}): Promise<WalCommandResult> {
  const dir = path.resolve(cwd ?? path.dirname(path.resolve(args.p)));
  const abs = { p: path.resolve(dir, args.p), f: args.f };
  const command = expandWalCommand(template, abs);
  const maxErr = opts.maxStderrBytes ?? DEFAULT_MAX_STDERR;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    // detached: its own process group, so a timeout or abort reaches what sh started too.
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: dir,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    let errBuf = Buffer.alloc(0);
    let truncated = false;
    child.stderr!.on('data', (c: Buffer) => {
      errBuf = Buffer.concat([errBuf, c]);
      if (errBuf.length > maxErr) {
        errBuf = errBuf.subarray(errBuf.length - maxErr);
        truncated = true;
      }
    });
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const killGroup = () => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      killTimer ??= setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 5000);
      killTimer.unref();
    };
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            killGroup();
          }, opts.timeoutMs)
        : undefined;
    const onAbort = () => killGroup();
    if (opts.signal?.aborted) queueMicrotask(onAbort);
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', (e) => {
      done();
      reject(new GutsError('GUTS_IO', `cannot run /bin/sh for WAL command in ${dir}: ${(e as Error).message}`, dir));
    });
    child.on('close', (code, signal) => {
      done();
      resolve({
        ok: code === 0,
        command,
        cwd: dir,
        exit_code: code,
        signal,
        timed_out: timedOut,
        stderr: errBuf.toString('utf8').trim(),
        stderr_truncated: truncated,
        elapsed_seconds: Number(process.hrtime.bigint() - t0) / 1e9,
      });
    });
  });
}
