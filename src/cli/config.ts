import { Command } from 'commander';
import * as path from 'node:path';

import { CONFIG_KEYS, DEFAULT_CONFIG_PATH, getConfigValue, loadConfig, maskSecrets, setConfigValue } from '../config';
import { formatKey, generateKey, makeStdoutFilePrivate, writeKeyFile } from '../keygen';
import { globals, printJson, run } from './context';

export function registerConfig(program: Command): void {
  const config = program.command('config').description('read and edit config.yaml (comments are kept)');
  config
    .command('get')
    .description('print one key (or the whole effective config with no key)')
    .argument('[key]', 'dotted key, e.g. storage.data_dir')
    .option('--json', 'print the value (or the whole config) as JSON on stdout')
    .action(
      run(async (key: string | undefined, opts: { json?: boolean }, cmd: Command) => {
        const loaded = loadConfig(globals(cmd).config);
        const value = maskSecrets(key ?? '', key ? getConfigValue(loaded.config, key) : loaded.config);
        if (opts.json || typeof value === 'object') printJson(value);
        else process.stdout.write(`${String(value)}\n`);
      }),
    );
  config
    .command('set')
    .description('set one key, validated; the file is written atomically')
    .argument('<key>', 'dotted key, e.g. wal.archive_command')
    .argument('<value>', 'new value (lists: comma-separated)')
    .option('--create', 'create the file named by --config / GUTS_CONFIG when it does not exist')
    .option('--json', 'print one JSON object on stdout: {key, value, config_file}')
    .addHelpText(
      'after',
      `
The value is checked by the same rules as loading the file (type, range, enum);
an invalid value or an unknown key is refused (exit 2) and the file is left as
it was. A missing default ${DEFAULT_CONFIG_PATH} is created (mode 0640); a
missing file named by --config or GUTS_CONFIG is refused (GUTS_NOT_FOUND,
exit 2) unless --create is given, so that a typo never writes a new file.`,
    )
    .action(
      run(async (key: string, value: string, opts: { create?: boolean; json?: boolean }, cmd: Command) => {
        const r = setConfigValue(globals(cmd).config, key, value, { create: opts.create });
        if (r.created) process.stderr.write(`created ${r.path}\n`);
        if (opts.json) printJson({ key, value: maskSecrets(key, r.value), config_file: path.resolve(r.path) });
        process.stderr.write(`${key} = ${JSON.stringify(maskSecrets(key, r.value))} (${r.path}); restart the node to apply\n`);
      }),
    );
  config
    .command('keys')
    .description('list every known key with its default')
    .option('--json', 'print one JSON object on stdout: {keys: [{key, default, help}]}')
    .action(
      run(async (opts: { json?: boolean }) => {
        if (opts.json) printJson({ keys: Object.entries(CONFIG_KEYS).map(([key, s]) => ({ key, default: s.default, help: s.help })) });
        else for (const [k, s] of Object.entries(CONFIG_KEYS)) process.stdout.write(`${k.padEnd(24)} ${JSON.stringify(s.default).padEnd(22)} ${s.help}\n`);
      }),
    );

  program
    .command('keygen')
    .description('generate an ed25519 node key: "<private hex>\\n<public hex>\\n"')
    .option('-o, --output <path>', 'write to this file with mode 0600 (refuses to overwrite)')
    .option('--json', 'print one JSON object on stdout: {file, public_key}, or {file: null, public_key, private_key} without --output')
    .addHelpText(
      'after',
      `
Without --output the key goes to standard output. When that is a regular file
(the guide's "guts-node keygen > /etc/guts/node.key"), its mode is set to 0600
before the key is written, and stderr says so; if it cannot be, nothing is
written (GUTS_PERMISSION, exit 2).`,
    )
    .action(
      run(async (opts: { output?: string; json?: boolean }) => {
        const key = generateKey();
        if (opts.output) {
          writeKeyFile(path.resolve(opts.output), key);
          if (opts.json) printJson({ file: path.resolve(opts.output), public_key: key.publicHex });
          process.stderr.write(`wrote ${path.resolve(opts.output)} (public key ${key.publicHex})\n`);
        } else if (opts.json) {
          printJson({ file: null, public_key: key.publicHex, private_key: key.privateHex });
        } else {
          const file = makeStdoutFilePrivate();
          process.stdout.write(formatKey(key));
          if (file) process.stderr.write(`wrote the node key to ${file}, set to mode 0600 (public key ${key.publicHex})\n`);
        }
      }),
    );
}
