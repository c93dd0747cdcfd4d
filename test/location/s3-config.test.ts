// backup.s3.* in config.yaml: validated (nested keys), the secret masked by
// config get/set, and used to reach the server when the AWS environment says
// nothing (endpoint -> path-style).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BIN } from '../lib/node-proc';
import { startS3 } from '../lib/s3';

t.test('backup.s3.* from config.yaml', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-s3cfg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, ''); // a named config must exist (config set edits it)
  // no AWS_* variables at all: everything from the file
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) clean[k] = v;
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, '--config', config, ...args], {
      encoding: 'utf8',
      env: { ...clean, AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_EC2_METADATA_DISABLED: 'true' },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const outputs: string[] = [];
  const run = (args: string[]) => {
    const r = cli(args);
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  t.equal(run(['config', 'set', 'backup.s3.endpoint', s3.endpoint]).code, 0);
  t.equal(run(['config', 'set', 'backup.s3.access_key_id', s3.keyId]).code, 0);
  const set = run(['config', 'set', 'backup.s3.secret_access_key', s3.secret]);
  t.equal(set.code, 0, set.stderr);
  t.match(set.stderr, /backup\.s3\.secret_access_key = "\*\*\*"/, 'config set masks the secret');
  t.equal(run(['config', 'get', 'backup.s3.secret_access_key']).stdout.trim(), '***', 'config get masks it');
  t.match(run(['config', 'get']).stdout, /"secret_access_key": "\*\*\*"/, 'and in the whole config');
  t.equal(run(['config', 'get', 'backup.s3.endpoint']).stdout.trim(), s3.endpoint);
  t.match(fs.readFileSync(config, 'utf8'), /s3:\n\s+endpoint:/, 'nested in the YAML');

  const list = run(['backup', 'list', 's3://guts-backups/x', '--json']);
  t.equal(list.code, 0, list.stderr);
  t.same(JSON.parse(list.stdout), [], 'reached the server with the file settings alone');

  fs.appendFileSync(config, '');
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, 'backup:\n  s3:\n    endpoit: http://x\n');
  const r = spawnSync(process.execPath, [BIN, '--config', bad, 'backup', 'list', 's3://guts-backups/x'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /GUTS_INVALID_CONFIG: .*backup\.s3\.endpoit/, 'an unknown nested key is named');
  t.notOk(outputs.join('\n').includes(s3.secret), 'the secret appears in no output');
});
