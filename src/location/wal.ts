// s3:// for the WAL archive (wal.archive_dir / --archive-dir / wal push /
// wal fetch): a WalLocation (src/wal/target.ts) over an S3 location. The
// same rules as the local directory: an archived name is never replaced;
// identical bytes pushed again are 'unchanged', different bytes GUTS_EXISTS;
// a fetch is written to a temp file beside the destination, fsynced and
// renamed. (S3 has no link(): two pushers racing for one name are told apart
// by the re-check after the upload, not prevented.)
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';

import type { GutsConfig } from '../config';
import { fsError, GutsError } from '../errors';
import { tempPathFor } from '../fsutil';
import { checkArchiveName, PutResult, WalLocation } from '../wal/target';
import { openLocation } from './index';
import { Location } from './types';

async function sha256Of(stream: AsyncIterable<unknown>): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

export class ObjectWalLocation implements WalLocation {
  readonly url: string;
  constructor(readonly location: Location) {
    this.url = location.url;
  }

  async put(name: string, srcPath: string): Promise<PutResult> {
    checkArchiveName(name);
    let size: number;
    try {
      size = fs.statSync(srcPath).size;
    } catch (e) {
      throw fsError(e, 'cannot read', srcPath);
    }
    const existing = await this.compare(name, srcPath, size);
    if (existing) return existing;
    await this.location.upload(name, fs.createReadStream(srcPath), { overwrite: false });
    return 'stored';
  }

  private async compare(name: string, srcPath: string, size: number): Promise<PutResult | null> {
    const st = await this.location.stat(name);
    if (!st) return null;
    if (st.size === size && (await sha256Of(await this.location.read(name))) === (await sha256Of(fs.createReadStream(srcPath)))) return 'unchanged';
    throw new GutsError('GUTS_EXISTS', `${this.location.urlOf(name)} already exists with different contents than ${srcPath} (an archived WAL file is never replaced; is another node archiving into ${this.url}?)`, this.location.urlOf(name));
  }

  async get(name: string, destPath: string): Promise<boolean> {
    checkArchiveName(name);
    if (!(await this.location.stat(name))) return false;
    const dest = path.resolve(destPath);
    const tmp = tempPathFor(dest);
    try {
      const fh = await fs.promises.open(tmp, 'wx', 0o600);
      try {
        await pipeline(await this.location.read(name), fs.createWriteStream('', { fd: fh.fd, autoClose: false }));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.promises.rename(tmp, dest);
    } catch (e) {
      await fs.promises.unlink(tmp).catch(() => undefined);
      if (e instanceof GutsError) throw e;
      throw fsError(e, 'cannot write', dest);
    }
    return true;
  }

  async list(): Promise<string[]> {
    return (await this.location.list()).map((o) => o.key).filter((k) => !k.includes('/')).sort();
  }

  async delete(name: string): Promise<void> {
    checkArchiveName(name);
    await this.location.delete(name);
  }
}

export function s3WalLocation(spec: string, cfg?: GutsConfig): WalLocation {
  return new ObjectWalLocation(openLocation(spec, cfg));
}
