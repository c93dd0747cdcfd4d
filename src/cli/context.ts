// Shared CLI plumbing: global options, error reporting, exit codes.
import { Command } from 'commander';

import { loadConfig, LoadedConfig, resolveDataDir } from '../config';
import { errorJson, exitCodeFor, formatError } from '../errors';

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
}

export interface CliContext {
  loaded: LoadedConfig;
  dataDir: string;
}

/** The root command's --config / --data-dir, wherever the subcommand sits. */
export function globals(cmd: Command): GlobalOptions {
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  return root.opts() as GlobalOptions;
}

export function context(cmd: Command, dataDirOverride?: string): CliContext {
  const g = globals(cmd);
  const loaded = loadConfig(g.config);
  return { loaded, dataDir: resolveDataDir(loaded.config, dataDirOverride || g.dataDir) };
}

/**
 * Reports a failed command: the one-line error (and a hint line for usage
 * errors) on stderr, and with --json also the JSON error object on stdout,
 * so a script reading stdout always gets one JSON document. Returns the exit code.
 */
export function reportError(err: unknown, json: boolean): number {
  const hint = (err as { hint?: unknown } | null)?.hint;
  process.stderr.write(formatError(err) + '\n' + (typeof hint === 'string' ? hint + '\n' : ''));
  if (process.env.GUTS_DEBUG) process.stderr.write(String((err as Error)?.stack) + '\n');
  if (json) printJson(errorJson(err));
  return exitCodeFor(err);
}

/** Wraps an async action: one-line error on stderr (JSON error on stdout with --json), documented exit code. */
export function run<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = typeof code === 'number' ? code : 0;
    } catch (err) {
      // commander passes (...arguments, options, command): the command's own --json decides.
      const cmd = args[args.length - 1];
      const json = cmd instanceof Command && Boolean(cmd.opts().json);
      process.exitCode = reportError(err, json);
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Positive integer option parser for commander. */
export function intOption(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new (require('commander').InvalidArgumentError)(`${name} must be an integer from ${min} to ${max}`);
    }
    return n;
  };
}
