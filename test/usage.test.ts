// Usage errors: one line "guts-node: GUTS_USAGE: …" plus one hint line, exit 2,
// for every class of commander error; with --json also the JSON error object
// on stdout. And the JSON error object of run() for failures of the command.
import t, { Test } from 'tap';
import * as path from 'node:path';

import { cli } from './fixtures/cli';

/** stderr is exactly the error line and the hint line. */
function usage(t: Test, args: string[], message: RegExp, hint: RegExp): void {
  const r = cli(args);
  const what = `guts-node ${args.join(' ')}`;
  t.equal(r.status, 2, `${what}: exit 2`);
  const lines = r.stderr.split('\n');
  t.equal(lines.length, 3, `${what}: two lines on stderr:\n${r.stderr}`);
  t.match(lines[0], /^guts-node: GUTS_USAGE: /, `${what}: one-line format`);
  t.match(lines[0], message, what);
  t.match(lines[1], hint, `${what}: hint`);
  t.equal(lines[2], '', 'ends with a newline');
  t.equal(r.stdout, '', `${what}: nothing on stdout without --json`);
}

t.test('each class of usage error: one line, one hint, exit 2', async (t) => {
  const help = (cmd: string) => new RegExp(`Try 'guts-node ${cmd} --help'\\.$`);
  usage(t, ['backup', 'create', '--output', 'x.tar.zst', '--bogus'], /backup create: unknown option '--bogus'/, help('backup create'));
  usage(t, ['backup', 'verify'], /backup verify: missing required argument 'file'/, help('backup verify'));
  usage(t, ['backup', 'create'], /backup create: required option '-o, --output <file>' not specified/, help('backup create'));
  usage(t, ['backup', 'create', '--output'], /argument missing/, help('backup create'));
  usage(t, ['backup', 'create', '--output', 'x.tar.zst', '--cpu-share', 'half'], /--cpu-share must be an integer from 5 to 100/, help('backup create'));
  usage(t, ['backup', 'frobnicate'], /backup: unknown command 'frobnicate'/, help('backup'));
  usage(t, ['frobnicate'], /^guts-node: GUTS_USAGE: unknown command 'frobnicate'$/, /^Try 'guts-node --help'\.$/);
  usage(t, ['backup', 'verify', 'a.tar.zst', 'b.tar.zst'], /backup verify: too many arguments/, help('backup verify'));
  usage(t, ['backup'], /backup: missing command \(one of: create, verify, restore/, help('backup'));
  usage(t, ['import', '/tmp', '--repo', 'no slash'], /import: option '--repo <owner\/name>' argument 'no slash' is invalid/, help('import'));
});

t.test('a mistyped option is unknown (not a missing required one), with a suggestion', async (t) => {
  // --output is required: commander alone would report it as not specified.
  usage(t, ['backup', 'create', '--ouput', 'x.tar.zst'], /backup create: unknown option '--ouput'/, /^Did you mean --output\? Try 'guts-node backup create --help'\.$/);
  usage(t, ['export', '--rep', 'a/b', '/tmp/x'], /export: unknown option '--rep'/, /^Did you mean --repo\? /);
  usage(t, ['backup', 'creat'], /unknown command 'creat'/, /^Did you mean create\? /);
});

t.test('help and version still exit 0 on stdout', async (t) => {
  for (const args of [['--help'], ['backup', 'create', '--help'], ['help', 'backup'], ['--version']]) {
    const r = cli(args);
    t.equal(r.status, 0, args.join(' '));
    t.not(r.stdout, '', 'printed on stdout');
    t.equal(r.stderr, '');
  }
});

t.test('--json: usage errors and command failures print the JSON error object on stdout', async (t) => {
  const dir = t.testdir();
  const cases: Array<{ args: string[]; code: string; exit: number }> = [
    { args: ['backup', 'create', '--ouput', 'x.tar.zst', '--json'], code: 'GUTS_USAGE', exit: 2 },
    { args: ['status', '--json', '--timeout'], code: 'GUTS_USAGE', exit: 2 },
    { args: ['backup', 'verify', path.join(dir, 'missing.tar.zst'), '--json'], code: 'GUTS_NOT_FOUND', exit: 2 },
    { args: ['--data-dir', path.join(dir, 'none'), 'verify', '--json'], code: 'GUTS_NOT_FOUND', exit: 2 },
    { args: ['backup', 'create', '--output', path.join(dir, 'x.zip'), '--json'], code: 'GUTS_INVALID_ARGUMENT', exit: 2 },
  ];
  for (const c of cases) {
    const r = cli(c.args);
    const what = `guts-node ${c.args.join(' ')}`;
    t.equal(r.status, c.exit, what);
    const out = JSON.parse(r.stdout);
    t.same(Object.keys(out), ['error'], `${what}: one object with "error"`);
    t.same(Object.keys(out.error).sort(), ['code', 'exit_code', 'message']);
    t.equal(out.error.code, c.code, what);
    t.equal(out.error.exit_code, c.exit, what);
    t.equal(typeof out.error.message, 'string');
    t.notMatch(out.error.message, /\n|^guts-node:/, 'the bare one-line message');
    t.match(r.stderr, new RegExp(`^guts-node: ${c.code}: `), `${what}: stderr still gets the line`);
    t.ok(r.stderr.includes(out.error.message), 'the same message on both');
  }
  // without --json, stdout stays empty on failure
  t.equal(cli(['backup', 'verify', path.join(dir, 'missing.tar.zst')]).stdout, '');
  // `--json` after `--` is an argument, not the option
  t.equal(cli(['backup', 'verify', '--', '--json', 'x']).stdout, '');
});
