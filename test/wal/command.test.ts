import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { checkWalCommandTemplate, describeWalCommandFailure, expandWalCommand, runWalCommand } from '../../src/wal/command';

t.test('expansion: %p, %f, %% and unknown placeholders', async (t) => {
  t.equal(expandWalCommand('cp %p /a/%f', { p: '/d/x.gwal', f: 'x.gwal' }), 'cp /d/x.gwal /a/x.gwal');
  t.equal(expandWalCommand('echo 100%% %f%%', { p: '/p', f: 'n' }), 'echo 100% n%');
  t.equal(expandWalCommand('%%p is not %p', { p: '/p', f: 'n' }), '%p is not /p');
  t.equal(expandWalCommand('no placeholders', { p: '/p', f: 'n' }), 'no placeholders');
  t.throws(() => expandWalCommand('cp %F x', { p: '/p', f: 'n' }), { code: 'GUTS_INVALID_CONFIG' });
  t.throws(() => expandWalCommand('cp %p x%', { p: '/p', f: 'n' }), { code: 'GUTS_INVALID_CONFIG' });
  t.throws(() => checkWalCommandTemplate('aws s3 cp %d s3://b/%f'), { code: 'GUTS_INVALID_CONFIG' });
  t.doesNotThrow(() => checkWalCommandTemplate('aws s3 cp %f s3://guts-wal/%p'));
});

t.test('cp archives a file; cwd is the segment dir so %f alone names it', async (t) => {
  const dir = t.testdir({ seg: { '00000001-0000000000000001.gwal': 'segment bytes' }, archive: {} });
  const seg = path.join(dir, 'seg', '00000001-0000000000000001.gwal');
  const archive = path.join(dir, 'archive');
  const r = await runWalCommand(`cp %f ${archive}/%f`, { p: seg, f: path.basename(seg) });
  t.ok(r.ok);
  t.equal(r.exit_code, 0);
  t.equal(r.signal, null);
  t.equal(r.cwd, path.join(dir, 'seg'));
  t.equal(r.command, `cp 00000001-0000000000000001.gwal ${archive}/00000001-0000000000000001.gwal`);
  t.equal(fs.readFileSync(path.join(archive, '00000001-0000000000000001.gwal'), 'utf8'), 'segment bytes');
  t.type(r.elapsed_seconds, 'number');

  // an explicit cwd; %p is absolute even when given relative to it
  const r2 = await runWalCommand('test "%p" = "$PWD/00000001-0000000000000001.gwal"', { p: '00000001-0000000000000001.gwal', f: '00000001-0000000000000001.gwal' }, path.join(dir, 'seg'));
  t.ok(r2.ok, r2.command);
});

t.test('names and directories with spaces (quoted in the template) and a literal %', async (t) => {
  const dir = t.testdir({ 'my dir': { 'a b.gwal': 'spaced' }, 'arch 100%': {} });
  const src = path.join(dir, 'my dir', 'a b.gwal');
  const r = await runWalCommand(`cp "%p" "${dir}/arch 100%%/%f"`, { p: src, f: 'a b.gwal' });
  t.ok(r.ok, r.stderr);
  t.equal(fs.readFileSync(path.join(dir, 'arch 100%', 'a b.gwal'), 'utf8'), 'spaced');
  // the restore direction: %f names the archived file, %p the destination
  const dest = path.join(dir, 'my dir', 'fetched copy');
  const f = await runWalCommand(`cp "${dir}/arch 100%%/%f" "%p"`, { p: dest, f: 'a b.gwal' });
  t.ok(f.ok, f.stderr);
  t.equal(fs.readFileSync(dest, 'utf8'), 'spaced');
});

t.test('failures: exit status, stderr captured (bounded), signals, timeouts, abort', async (t) => {
  const dir = t.testdir({ 'x.gwal': 'x' });
  const p = path.join(dir, 'x.gwal');
  const f = await runWalCommand('false', { p, f: 'x.gwal' });
  t.notOk(f.ok);
  t.equal(f.exit_code, 1);

  const missing = await runWalCommand(`cp ${dir}/nope.gwal %p.copy`, { p, f: 'x.gwal' });
  t.equal(missing.exit_code, 1);
  t.match(missing.stderr, /nope\.gwal/);
  t.match(describeWalCommandFailure(missing), /exited with status 1: .*nope\.gwal/);

  const status = await runWalCommand('echo first >&2; echo bad thing >&2; exit 7', { p, f: 'x.gwal' });
  t.equal(status.exit_code, 7);
  t.equal(status.stderr, 'first\nbad thing');
  t.match(describeWalCommandFailure(status), /status 7: bad thing$/);

  const notFound = await runWalCommand('no-such-command-guts %p', { p, f: 'x.gwal' });
  t.equal(notFound.exit_code, 127);

  const big = await runWalCommand('head -c 100000 /dev/zero | tr "\\0" a >&2; echo END >&2; exit 3', { p, f: 'x.gwal' }, undefined, { maxStderrBytes: 1000 });
  t.equal(big.exit_code, 3);
  t.ok(big.stderr_truncated);
  t.ok(big.stderr.length <= 1000);
  t.match(big.stderr, /END$/);

  const killed = await runWalCommand('kill -9 $$', { p, f: 'x.gwal' });
  t.notOk(killed.ok);
  t.equal(killed.signal, 'SIGKILL');
  t.equal(killed.exit_code, null);

  const t0 = Date.now();
  const slow = await runWalCommand('sleep 30 & wait', { p, f: 'x.gwal' }, undefined, { timeoutMs: 200 });
  t.ok(slow.timed_out);
  t.notOk(slow.ok);
  t.ok(Date.now() - t0 < 5000, 'the whole process group was killed');
  t.match(describeWalCommandFailure(slow), /timed out/);

  const ac = new AbortController();
  const pending = runWalCommand('sleep 30', { p, f: 'x.gwal' }, undefined, { signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  const aborted = await pending;
  t.equal(aborted.signal, 'SIGTERM');

  await t.rejects(runWalCommand('cp %q', { p, f: 'x.gwal' }), { code: 'GUTS_INVALID_CONFIG' });
  await t.rejects(runWalCommand('true', { p, f: 'x.gwal' }, path.join(dir, 'no-such-dir')), { code: 'GUTS_IO' });
});
