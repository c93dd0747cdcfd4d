// The one place where error codes are named and mapped to exit codes.
// Native errors arrive with `.code` already set (native/errors.cc); TS code
// throws GutsError with the same vocabulary. Tests assert codes, not messages.

export const ErrorCodes = [
  'GUTS_CORRUPT',
  'GUTS_LOCKED',
  'GUTS_NOT_FOUND',
  'GUTS_INVALID_ARGUMENT',
  'GUTS_IO',
  'GUTS_UNSAFE_PATH',
  'GUTS_EXISTS',
  'GUTS_NO_SPACE',
  'GUTS_PERMISSION',
  'GUTS_CANCELLED',
  'GUTS_CLOSED',
  'GUTS_INTERNAL',
  'GUTS_INVALID_CONFIG',
  'GUTS_NOT_RUNNING',
  'GUTS_MAINTENANCE',
  'GUTS_TIMEOUT',
  /** the file is not a guts-node backup at all (docs/FORMAT.md "Reader rules"): exit 2, not "corrupt" */
  'GUTS_NOT_ARCHIVE',
  /** the command line itself is wrong (unknown option or command, missing argument, bad option value) */
  'GUTS_USAGE',
  /** the WAL archive misses a segment (or a segment does not chain) before the restore target */
  'GUTS_WAL_GAP',
  /** the WAL archive ends before the restore target (--until …) */
  'GUTS_WAL_TARGET',
  /** writes refused: WAL segments not yet archived exceed wal.max_pending */
  'GUTS_WAL_BACKLOG',
  /** a backup repository is locked by another create/prune (docs/FORMAT.md "Backup repository"): exit 3 */
  'GUTS_REPO_LOCKED',
  /** a backup repository object or snapshot is missing or damaged: exit 1 */
  'GUTS_REPO_CORRUPT',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

export class GutsError extends Error {
  readonly code: ErrorCode;
  readonly path?: string;
  constructor(code: ErrorCode, message: string, path?: string) {
    super(message);
    this.name = 'GutsError';
    this.code = code;
    if (path !== undefined) this.path = path;
  }
}

/** Documented exit codes (README "Exit codes"). */
export const ExitCode = {
  OK: 0,
  /** the data was checked and is invalid / corrupt */
  INVALID: 1,
  /** usage, configuration or I/O error */
  ERROR: 2,
  /** the store is held by a running node or another process */
  LOCKED: 3,
  /** interrupted (SIGINT / SIGTERM); nothing half-written is left */
  INTERRUPTED: 130,
} as const;

export function exitCodeFor(err: unknown): number {
  const code = errorCode(err);
  if (code === 'GUTS_LOCKED' || code === 'GUTS_REPO_LOCKED') return ExitCode.LOCKED;
  if (code === 'GUTS_CORRUPT' || code === 'GUTS_REPO_CORRUPT' || code === 'GUTS_WAL_GAP' || code === 'GUTS_WAL_TARGET') return ExitCode.INVALID;
  if (code === 'GUTS_CANCELLED') return ExitCode.INTERRUPTED;
  return ExitCode.ERROR;
}

/** Stable code of any error: native, GutsError, or a Node system error. */
export function errorCode(err: unknown): ErrorCode {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if ((ErrorCodes as readonly string[]).includes(code)) return code as ErrorCode;
    switch (code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return 'GUTS_NOT_FOUND';
      case 'EEXIST':
      case 'ENOTEMPTY':
        return 'GUTS_EXISTS';
      case 'ENOSPC':
      case 'EDQUOT':
      case 'EFBIG':
        return 'GUTS_NO_SPACE';
      case 'EACCES':
      case 'EPERM':
      case 'EROFS':
        return 'GUTS_PERMISSION';
      case 'ECONNREFUSED':
        return 'GUTS_NOT_RUNNING';
    }
  }
  return err instanceof GutsError ? err.code : 'GUTS_IO';
}

/**
 * Text that quotes a path or an archive entry name, safe for a terminal and
 * one line: C0/C1 controls and DEL become \xNN, bidi overrides and line/paragraph
 * separators \uNNNN; printable text (any script) is kept. native/errors.cc
 * EscapeName() does the same for native messages (already-escaped text passes
 * through unchanged).
 */
export function escapeControls(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).toUpperCase().padStart(4, '0')}`;
  });
}

/** The message of the one-line error, without the "guts-node: GUTS_X: " prefix (control characters escaped). */
export function errorMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return escapeControls(msg.replace(/\n+$/, ''));
}

/** One line for stderr: "guts-node: GUTS_X: message". */
export function formatError(err: unknown): string {
  return `guts-node: ${errorCode(err)}: ${errorMessage(err)}`;
}

/** What --json prints on stdout on failure (docs/JSON.md "Errors"). */
export function errorJson(err: unknown): { error: { code: ErrorCode; message: string; exit_code: number } } {
  return { error: { code: errorCode(err), message: errorMessage(err), exit_code: exitCodeFor(err) } };
}

/** Wrap a Node fs error so the message names the file and the cause. */
export function fsError(err: unknown, what: string, path: string): GutsError {
  const e = err as NodeJS.ErrnoException;
  const cause = e?.code ? `${e.code}${e.message ? ' (' + e.message.replace(/^[A-Z]+: /, '').split(',')[0] + ')' : ''}` : String(err);
  return new GutsError(errorCode(err), `${what} ${path}: ${cause}`, path);
}
