// Usage errors in the one-line format of every other error:
//   guts-node: GUTS_USAGE: backup create: unknown option '--ouput'
//   Did you mean --output? Try 'guts-node backup create --help'.
// exit 2, plus the JSON error object on stdout when --json is on the command
// line. commander's own error output (and its help-after-error) is silenced;
// its errors arrive here through exitOverride as CommanderError.
import { Command, CommanderError } from 'commander';

import { GutsError } from '../errors';

/** A usage error: GUTS_USAGE (exit 2) with the hint line printed under it. */
export class UsageError extends GutsError {
  readonly hint: string;
  constructor(message: string, hint: string) {
    super('GUTS_USAGE', message);
    this.hint = hint;
  }
}

/** "guts-node backup create" */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function subcommandNames(cmd: Command): string {
  return cmd.commands.map((c) => c.name()).join(', ');
}

/** The UsageError for a CommanderError raised by `cmd`, or null for help/version (exit 0). */
export function usageErrorFor(err: CommanderError, cmd: Command): UsageError | null {
  if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return null;
  const where = commandPath(cmd);
  const tryHelp = `Try '${where} --help'.`;
  if (err.code === 'commander.help') {
    // a command group called without one of its commands
    const label = cmd.parent ? `${where.replace(/^\S+ /, '')}: ` : '';
    return new UsageError(`${label}missing command (one of: ${subcommandNames(cmd)})`, tryHelp);
  }
  // commander: "error: unknown option '--ouput'\n(Did you mean --output?)"
  const [first, ...rest] = err.message.replace(/^error: /, '').split('\n');
  const suggestion = rest.join(' ').trim().replace(/^\((.*)\)$/, '$1');
  const label = cmd.parent ? `${where.replace(/^\S+ /, '')}: ` : '';
  return new UsageError(`${label}${first}`, suggestion ? `${suggestion} ${tryHelp}` : tryHelp);
}

/**
 * commander checks required options before unknown ones, so `--ouput x`
 * would be reported as "required option --output not specified". The
 * required options are checked here instead, in a preAction hook, which
 * runs after commander has rejected unknown options and bad arguments.
 */
function checkRequiredOptionsLater(cmd: Command): void {
  const required = cmd.options.filter((o) => o.mandatory);
  if (!required.length) return;
  for (const o of required) o.mandatory = false;
  cmd.hook('preAction', (_hooked, action) => {
    if (action !== cmd) return;
    for (const o of required) {
      if (cmd.getOptionValue(o.attributeName()) === undefined) {
        cmd.error(`error: required option '${o.flags}' not specified`, { code: 'commander.missingMandatoryOptionValue', exitCode: 2 });
      }
    }
  });
}

/** Routes every commander error of `program` and its commands through UsageError. */
export function installUsageErrors(program: Command): void {
  const walk = (cmd: Command) => {
    cmd.showHelpAfterError(false);
    // Our own line replaces commander's; help for a bare group is replaced by the usage line too.
    cmd.configureOutput({ outputError: () => undefined, writeErr: () => undefined });
    cmd.exitOverride((err) => {
      const usage = usageErrorFor(err, cmd);
      if (!usage) process.exit(0);
      throw usage;
    });
    checkRequiredOptionsLater(cmd);
    cmd.commands.forEach(walk);
  };
  walk(program);
}

/** Whether --json is on the command line (before a `--`): usage errors then print the JSON error too. */
export function jsonRequested(args: string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--json') return true;
  }
  return false;
}
