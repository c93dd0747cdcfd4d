// Node identity: ed25519 key in the upstream file format
// "<private key hex>\n<public key hex>\n" (32-byte seed, 32-byte public key).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import { GutsError } from './errors';
import { writeFileAtomic } from './fsutil';

export interface NodeKey {
  privateHex: string;
  publicHex: string;
}

export function generateKey(): NodeKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const priv = privateKey.export({ format: 'jwk' }).d!;
  const pub = publicKey.export({ format: 'jwk' }).x!;
  return { privateHex: Buffer.from(priv, 'base64url').toString('hex'), publicHex: Buffer.from(pub, 'base64url').toString('hex') };
}

export function formatKey(k: NodeKey): string {
  return `${k.privateHex}\n${k.publicHex}\n`;
}

/** Parses and checks a key file: the public half must match the private one. */
export function parseKey(text: string, file = 'node key'): NodeKey {
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines.length !== 2 || !lines.every((l) => /^[0-9a-f]{64}$/.test(l))) {
    throw new GutsError('GUTS_CORRUPT', `${file}: expected two lines of 64 hex digits (private, public)`);
  }
  const [privateHex, publicHex] = lines;
  const key = crypto.createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(privateHex, 'hex').toString('base64url'), x: Buffer.from(publicHex, 'hex').toString('base64url') },
    format: 'jwk',
  });
  const derived = Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url').toString('hex');
  if (derived !== publicHex) throw new GutsError('GUTS_CORRUPT', `${file}: public key does not match the private key`);
  return { privateHex, publicHex };
}

/**
 * `keygen > /etc/guts/node.key` (the guide's way): when standard output is a
 * regular file, make it 0600 before the private key goes into it (the shell
 * created it 0644 & ~umask). Returns the file's path (for the operator's
 * note), or null when stdout is not a regular file (a pipe, a terminal).
 * GUTS_PERMISSION, before anything is written, when the mode cannot be set.
 */
export function makeStdoutFilePrivate(fd = 1): string | null {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) return null;
  let file = `file descriptor ${fd}`;
  try {
    file = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    /* no /proc: name the fd */
  }
  try {
    fs.fchmodSync(fd, 0o600);
  } catch (e) {
    throw new GutsError('GUTS_PERMISSION', `cannot make ${file} private (mode 0600): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; the private key was not written`, file);
  }
  return file;
}

/** Writes a new key with mode 0600; never overwrites. */
export function writeKeyFile(file: string, key: NodeKey): void {
  if (fs.existsSync(file)) throw new GutsError('GUTS_EXISTS', `key file ${file} already exists; refusing to overwrite a node identity`, file);
  writeFileAtomic(file, formatKey(key), 0o600, 'wx');
}
