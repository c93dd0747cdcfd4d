import { Command } from 'commander';
import * as path from 'node:path';

import { CONFIG_KEYS, getConfigValue, loadConfig, maskSecrets, setConfigValue } from '../config';
import { formatKey, generateKey, makeStdoutFilePrivate, writeKeyFile } from '../keygen';
import { globals, printJson, run } from './context';

export function registerConfig(program: Command): void {
  const config = program.command('config').description('read and edit config.yaml (comments are kept)');
  config
    .command('get')
    .description('print one key (or the whole effective config with no key)')
    .argument('[key]', 'dotted key, e.g. storage.data_dir')
    .option('--json', 'print JSON')
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
    .action(
      run(async (key: string, value: string, _opts: unknown, cmd: Command) => {
        const r = setConfigValue(globals(cmd).config, key, value);
        process.stderr.write(`${key} = ${JSON.stringify(maskSecrets(key, r.value))} (${r.path}); restart the node to apply\n`);
      }),
    );
  config
    .command('keys')
    .description('list every known key with its default')
    .action(
      run(async () => {
        for (const [k, s] of Object.entries(CONFIG_KEYS)) process.stdout.write(`${k.padEnd(24)} ${JSON.stringify(s.default).padEnd(22)} ${s.help}\n`);
      }),
    );

  program
    .command('keygen')
    .description('generate an ed25519 node key: "<private hex>\\n<public hex>\\n"')
    .option('-o, --output <path>', 'write to this file with mode 0600 (refuses to overwrite)')
    .addHelpText(
      'after',
      `
Without --output the key goes to standard output. When that is a regular file
(the guide's "guts-node keygen > /etc/guts/node.key"), its mode is set to 0600
before the key is written, and stderr says so; if it cannot be, nothing is
written (GUTS_PERMISSION, exit 2).`,
    )
    .action(
      run(async (opts: { output?: string }) => {
        const key = generateKey();
        if (opts.output) {
          writeKeyFile(path.resolve(opts.output), key);
          process.stderr.write(`wrote ${path.resolve(opts.output)} (public key ${key.publicHex})\n`);
        } else {
          const file = makeStdoutFilePrivate();
          process.stdout.write(formatKey(key));
          if (file) process.stderr.write(`wrote the node key to ${file}, set to mode 0600 (public key ${key.publicHex})\n`);
        }
      }),
    );
}
