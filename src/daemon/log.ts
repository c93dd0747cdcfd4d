// One line per event on stderr, as text or JSON (config logging.format), at or
// above config logging.level. Fields are flat key/values so both forms grep well.
import { escapeControls } from '../errors';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

export class Logger {
  private readonly min: number;

  constructor(
    level: string = 'info',
    private readonly format: string = 'text',
    private readonly out: (line: string) => void = (line) => process.stderr.write(line),
  ) {
    this.min = RANK[level as LogLevel] ?? RANK.info;
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min;
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const ts = new Date().toISOString();
    if (this.format === 'json') {
      this.out(JSON.stringify({ ts, level, msg, ...fields }) + '\n');
      return;
    }
    let line = `${ts} ${level.toUpperCase().padEnd(5)} ${msg}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      line += ` ${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
    }
    // request paths, repository and entry names come from clients: no raw control characters on a terminal
    this.out(escapeControls(line) + '\n');
  }

  trace(msg: string, fields?: LogFields): void {
    this.log('trace', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }
}
