import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { DEFAULT_CONFIG_PATH, loadConfig, setConfigValue } from '../src/config';
import { buildArchive, sampleFiles } from './fixtures/archives';
import { BIN, cli } from './fixtures/cli';

t.test('config set keeps comments and validates', async (t) => {
  const dir = t.testdir({ 'config.yaml': '# my node\napi:\n  addr: "0.0.0.0:8080" # public\nstorage:\n  data_dir: /srv/guts\n' });
  const file = path.join(dir, 'config.yaml');
  setConfigValue(file, 'wal.archive_command', 'aws s3 cp %f s3://guts-wal/%p');
  const text = fs.readFileSync(file, 'utf8');
  t.match(text, /# my node/);
  t.match(text, /# public/);
  const cfg = loadConfig(file).config;
  t.equal(cfg.wal.archive_command, 'aws s3 cp %f s3://guts-wal/%p');
  t.equal(cfg.storage.data_dir, '/srv/guts');
  t.throws(() => setConfigValue(file, 'wal.nope', 'x'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => setConfigValue(file, 'api.addr', 'not an addr'), { code: 'GUTS_INVALID_ARGUMENT' });
});

t.test('a config named by --config or GUTS_CONFIG must exist; only the default may be absent', async (t) => {
  const dir = t.testdir({ 'data': {} });
  const missing = path.join(dir, 'typo.yaml');
  t.throws(() => loadConfig(missing), { code: 'GUTS_NOT_FOUND' });
  t.throws(() => loadConfig(path.join(dir, 'not-a-dir.yaml', 'x.yaml')), { code: 'GUTS_NOT_FOUND' });
  const saved = process.env.GUTS_CONFIG;
  t.teardown(() => {
    if (saved === undefined) delete process.env.GUTS_CONFIG;
    else process.env.GUTS_CONFIG = saved;
  });
  process.env.GUTS_CONFIG = missing;
  t.throws(() => loadConfig(), { code: 'GUTS_NOT_FOUND' }, 'named by GUTS_CONFIG');
  delete process.env.GUTS_CONFIG;
  if (!fs.existsSync(DEFAULT_CONFIG_PATH)) t.same(loadConfig(), { path: DEFAULT_CONFIG_PATH, exists: false, config: loadConfig('/dev/null').config }, 'the default may be absent');

  // the case: a restore meant for a test dir must not go to storage.data_dir's default
  const archive = buildArchive(dir, 'a.tar.zst', { files: sampleFiles() }).path;
  for (const [args, env] of [
    [['--config', missing, 'backup', 'restore', archive], {}],
    [['backup', 'restore', archive], { GUTS_CONFIG: missing }],
    [['status'], { GUTS_CONFIG: missing }],
    [['--config', missing, 'config', 'get', 'storage.data_dir'], {}],
  ] as Array<[string[], NodeJS.ProcessEnv]>) {
    const r = cli(args, { env });
    t.equal(r.status, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, /^guts-node: GUTS_NOT_FOUND: config file .*typo\.yaml \(named by (--config|GUTS_CONFIG)\) does not exist/);
  }
  t.notOk(fs.existsSync(missing));
});

t.test('config set: an explicitly named missing file is not created without --create', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'etc', 'config.yaml');
  const r = cli(['--config', file, 'config', 'set', 'backup.level', '5']);
  t.equal(r.status, 2);
  t.match(r.stderr, /^guts-node: GUTS_NOT_FOUND: .*--create/);
  t.notOk(fs.existsSync(path.join(dir, 'etc')), 'nothing created');
  t.throws(() => setConfigValue(file, 'backup.level', '5'), { code: 'GUTS_NOT_FOUND' });

  const c = cli(['--config', file, 'config', 'set', '--create', 'backup.level', '5']);
  t.equal(c.status, 0, c.stderr);
  t.match(c.stderr, `created ${file}`);
  t.equal(loadConfig(file).config.backup.level, 5);
  t.equal(fs.statSync(file).mode & 0o777, 0o640);
  t.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o755, 'a created config dir is readable by the node user');

  // --config /dev/null means "no file": config set must not rename a file over it
  const dn = cli(['--config', '/dev/null', 'config', 'set', 'backup.level', '5']);
  t.equal(dn.status, 2);
  t.match(dn.stderr, /^guts-node: GUTS_INVALID_ARGUMENT: config file \/dev\/null is not a regular file/);
  t.ok(fs.statSync('/dev/null').isCharacterDevice(), '/dev/null intact');
});

t.test('config set with no config anywhere creates the default file (the guide on a fresh machine)', async (t) => {
  // a private mount namespace with an empty /etc: the real /etc is never written
  const script = `mount -t tmpfs none /etc && "${process.execPath}" ${BIN} config set wal.archive_command 'aws s3 cp %f s3://guts-wal/%p' && cat ${DEFAULT_CONFIG_PATH} && stat -c '%a %n' /etc/guts ${DEFAULT_CONFIG_PATH}`;
  const env = { ...process.env };
  delete env.GUTS_CONFIG;
  delete env.NODE_EXTRA_CA_CERTS;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', env });
  if (r.error || (r.status !== 0 && /unshare|mount/.test(r.stderr) && !/guts-node/.test(r.stderr))) {
    t.skip(`needs unshare -m and tmpfs mounts (root): ${r.stderr.trim().split('\n')[0]}`);
    return;
  }
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, `created ${DEFAULT_CONFIG_PATH}`);
  t.match(r.stdout, /wal:\n {2}archive_command: aws s3 cp %f s3:\/\/guts-wal\/%p\n/);
  t.match(r.stdout, `755 /etc/guts\n640 ${DEFAULT_CONFIG_PATH}`);
});

t.test('values are checked when set, with the rules of a load; the file is left as it was', async (t) => {
  const dir = t.testdir({ 'config.yaml': '# keep me\nbackup:\n  level: 3\n' });
  const file = path.join(dir, 'config.yaml');
  const before = fs.readFileSync(file, 'utf8');
  for (const [key, value, names] of [
    ['backup.level', '50', /backup\.level: expected an integer from 1 to 19.*got "50"/],
    ['backup.level', '0', /backup\.level: expected an integer from 1 to 19/],
    ['backup.level', 'fast', /backup\.level: expected an integer/],
    ['backup.retention_days', '0', /backup\.retention_days: expected an integer from 1 to 36500/],
    ['wal.archive_timeout', '0s', /wal\.archive_timeout: must be between 100ms and 24h/],
    ['wal.archive_timeout', 'soon', /wal\.archive_timeout: invalid duration/],
    ['logging.level', 'loud', /logging\.level: expected one of trace, debug, info, warn, error/],
    ['metrics.enabled', 'maybe', /metrics\.enabled: expected true or false/],
    ['api.addr', 'localhost', /api\.addr: expected host:port/],
    ['api.addr', '127.0.0.1:70000', /api\.addr: port out of range/],
  ] as Array<[string, string, RegExp]>) {
    const r = cli(['--config', file, 'config', 'set', key, value]);
    t.equal(r.status, 2, `${key} ${value}: exit 2`);
    t.match(r.stderr, new RegExp(`^guts-node: GUTS_INVALID_ARGUMENT: ${names.source}`), `${key} ${value}: names the key and the rule`);
    t.equal(fs.readFileSync(file, 'utf8'), before, `${key} ${value}: file unchanged`);
  }
  for (const key of ['backup.levle', 'backup', 'storage.data_dir.x', 'nope.key']) {
    const r = cli(['--config', file, 'config', 'set', key, '1']);
    t.equal(r.status, 2, `unknown key ${key}`);
    t.match(r.stderr, /^guts-node: GUTS_INVALID_ARGUMENT: unknown config key/);
  }
  t.equal(fs.readFileSync(file, 'utf8'), before);

  // the same rule when the file is loaded: a hand-edited level 50 is an error naming the key
  fs.writeFileSync(path.join(dir, 'bad.yaml'), 'backup:\n  level: 50\n');
  t.throws(() => loadConfig(path.join(dir, 'bad.yaml')), { code: 'GUTS_INVALID_CONFIG', message: /backup\.level: expected an integer from 1 to 19/ });
  const ok = cli(['--config', file, 'config', 'set', 'backup.level', '19']);
  t.equal(ok.status, 0, ok.stderr);
  t.match(fs.readFileSync(file, 'utf8'), /# keep me/);
});

t.test('backup.level above 9 from the config: .tar.gz backups use 9, zstd the level', async (t) => {
  const dir = t.testdir({ 'config.yaml': 'backup:\n  level: 12\n' });
  const file = path.join(dir, 'config.yaml');
  const data = path.join(dir, 'data');
  t.equal(cli(['--config', file, '--data-dir', data, 'dev', 'seed', '--size', '1MiB']).status, 0);
  const gz = cli(['--config', file, '--data-dir', data, 'backup', 'create', '--output', path.join(dir, 'b.tar.gz'), '--json']);
  t.equal(gz.status, 0, gz.stderr);
  const zst = cli(['--config', file, '--data-dir', data, 'backup', 'create', '--output', path.join(dir, 'b.tar.zst'), '--json']);
  t.equal(zst.status, 0, zst.stderr);
  const explicit = cli(['--config', file, '--data-dir', data, 'backup', 'create', '--output', path.join(dir, 'c.tar.gz'), '--level', '12']);
  t.equal(explicit.status, 2, 'an explicit --level is checked as given');
});

t.test('wal.* keys are validated', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, ''); // a named config must exist
  setConfigValue(file, 'wal.archive_timeout', '1s');
  setConfigValue(file, 'wal.segment_size', '16MiB');
  setConfigValue(file, 'wal.max_pending', '64KiB');
  setConfigValue(file, 'wal.archive_command', 'cp %p /archive/%f && echo 100%%');
  const cfg = loadConfig(file).config;
  t.same([cfg.wal.archive_timeout, cfg.wal.segment_size, cfg.wal.max_pending], ['1s', '16MiB', '64KiB']);
  t.throws(() => setConfigValue(file, 'wal.archive_command', 'cp %x /archive'), { code: 'GUTS_INVALID_ARGUMENT' }, 'unknown placeholder');
  t.throws(() => setConfigValue(file, 'wal.archive_timeout', '10ms'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => setConfigValue(file, 'wal.archive_timeout', 'soon'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => setConfigValue(file, 'wal.segment_size', '1KiB'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => setConfigValue(file, 'wal.segment_size', '2GiB'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => setConfigValue(file, 'wal.max_pending', 'lots'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.equal(loadConfig(file).config.wal.max_pending, '64KiB', 'a refused value leaves the file as it was');
  fs.writeFileSync(file, 'wal:\n  segment_size: 12\n');
  t.throws(() => loadConfig(file), { code: 'GUTS_INVALID_CONFIG' }, 'checked at load too');
});
