import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';

import { buildProgram } from '../src/cli/main';
import { parseKey } from '../src/keygen';

const BIN = path.resolve(__dirname, '../bin/guts-node.js');
function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('keygen prints the upstream format and the key is a valid ed25519 pair', async (t) => {
  const r = cli(['keygen']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^[0-9a-f]{64}\n[0-9a-f]{64}\n$/);
  const key = parseKey(r.stdout);
  const priv = crypto.createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(key.privateHex, 'hex').toString('base64url'), x: Buffer.from(key.publicHex, 'hex').toString('base64url') },
    format: 'jwk',
  });
  const sig = crypto.sign(null, Buffer.from('guts'), priv);
  const pub = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(key.publicHex, 'hex').toString('base64url') }, format: 'jwk' });
  t.ok(crypto.verify(null, Buffer.from('guts'), pub, sig), 'signature verifies with the public half');
  t.not(cli(['keygen']).stdout, r.stdout, 'fresh key each time');
  t.throws(() => parseKey(`${key.privateHex}\n${'0'.repeat(64)}\n`), { code: 'GUTS_CORRUPT' });
});

t.test('keygen --output writes 0600 and refuses to overwrite', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'node.key');
  t.equal(cli(['keygen', '--output', file]).code, 0);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  const before = fs.readFileSync(file, 'utf8');
  parseKey(before);
  const again = cli(['keygen', '--output', file]);
  t.equal(again.code, 2);
  t.match(again.stderr, /GUTS_EXISTS/);
  t.equal(fs.readFileSync(file, 'utf8'), before, 'existing identity untouched');
  const bad = cli(['keygen', '--output', path.join(dir, 'missing', 'node.key')]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /missing/);
});

t.test('config set / get through the CLI, as in the guide', async (t) => {
  const dir = t.testdir({ 'config.yaml': '# operator notes\nstorage:\n  data_dir: /srv/guts # fast disk\n' });
  const file = path.join(dir, 'config.yaml');
  const env = { GUTS_CONFIG: file };
  t.equal(cli(['config', 'set', 'wal.archive_command', 'aws s3 cp %f s3://guts-wal/%p'], env).code, 0);
  t.equal(cli(['config', 'set', 'wal.restore_command', 'aws s3 cp s3://guts-wal/%f %p'], env).code, 0);
  t.equal(cli(['config', 'get', 'wal.archive_command'], env).stdout, 'aws s3 cp %f s3://guts-wal/%p\n');
  t.equal(cli(['--config', file, 'config', 'get', 'storage.data_dir']).stdout, '/srv/guts\n');
  const text = fs.readFileSync(file, 'utf8');
  t.match(text, /# operator notes/);
  t.match(text, /# fast disk/);
  const unknown = cli(['config', 'set', 'wal.nope', 'x'], env);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /GUTS_INVALID_ARGUMENT.*wal\.nope/);
  fs.writeFileSync(file, 'storage:\n  data_dir: [1, 2]\n');
  const invalid = cli(['config', 'get', 'storage.data_dir'], env);
  t.equal(invalid.code, 2);
  t.match(invalid.stderr, /GUTS_INVALID_CONFIG.*storage\.data_dir/);
  const json = JSON.parse(cli(['config', 'get', '--json'], { GUTS_CONFIG: '/dev/null' }).stdout);
  t.equal(json.storage.data_dir, '/var/lib/guts', 'an empty file means defaults');
});

t.test('every command has a description and --help', async (t) => {
  const walk = (c: Command, prefix: string[]): string[][] => [prefix, ...c.commands.flatMap((s) => walk(s, [...prefix, s.name()]))];
  const all = walk(buildProgram(), []);
  t.ok(all.length > 10, `${all.length} commands`);
  for (const p of all) {
    const r = cli([...p, '--help']);
    t.equal(r.code, 0, `guts-node ${p.join(' ')} --help`);
    t.match(r.stdout, /Usage: guts-node/);
  }
  const usage = cli(['backup', 'frobnicate']);
  t.equal(usage.code, 2, 'usage errors exit 2');
  for (const bad of ['0', '101', 'half']) {
    const r = cli(['backup', 'create', '--output', '/nonexistent/x.tar.zst', '--cpu-share', bad]);
    t.equal(r.code, 2, `--cpu-share ${bad} is a usage error`);
    t.match(r.stderr, /--cpu-share must be an integer from 5 to 100/);
  }
});
