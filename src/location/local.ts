// A local directory as a backup location. Uploads go to a hidden temp file
// beside the final name (mode 0600), are fsynced and then linked (or, with
// overwrite, renamed) into place, and the directory is fsynced: nothing is
// visible under the final name before the data is complete and durable.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { fsError, GutsError } from '../errors';
import { fsyncDir, tempPathFor, writeFileAtomic } from '../fsutil';
import { byteSourceStream, isByteSource } from './byte-source';
import { ByteSource, Location, ObjectInfo, ReadOptions, UploadOptions } from './types';

export function checkKey(key: string, url: string): void {
  const parts = key.split('/');
  if (!key || key.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..'))
    throw new GutsError('GUTS_UNSAFE_PATH', `invalid object name ${JSON.stringify(key)} under ${url}`);
}

export class LocalLocation implements Location {
  readonly kind = 'local' as const;
  readonly url: string;

  constructor(dir: string) {
    this.url = path.resolve(dir);
  }

  urlOf(key: string): string {
    return path.join(this.url, key);
  }

  private file(key: string): string {
    checkKey(key, this.url);
    return path.join(this.url, key);
  }

  async upload(key: string, input: Readable | ByteSource, opts: UploadOptions = {}): Promise<number> {
    const file = this.file(key);
    const source = isByteSource(input) ? byteSourceStream(input) : input;
    try {
      return await this.uploadStream(file, source, opts);
    } catch (e) {
      if (isByteSource(input)) input.cancel(e as Error);
      throw e;
    }
  }

  private async uploadStream(file: string, source: Readable, opts: UploadOptions): Promise<number> {
    const dir = path.dirname(file);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw fsError(e, 'cannot create directory', dir);
    }
    if (!opts.overwrite && fs.existsSync(file)) throw new GutsError('GUTS_EXISTS', `${file} already exists`, file);
    const tmp = tempPathFor(file, 'upload');
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        opts.onProgress?.(bytes);
        cb(null, chunk);
      },
    });
    let done = false;
    try {
      try {
        await pipeline(source, count, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 }), { signal: opts.signal });
      } catch (e) {
        if (opts.signal?.aborted) throw new GutsError('GUTS_CANCELLED', `upload to ${file} interrupted; nothing was written`, file);
        if ((e as NodeJS.ErrnoException).syscall) throw fsError(e, 'cannot write', tmp);
        throw e;
      }
      try {
        const fd = fs.openSync(tmp, 'r+');
        try {
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      } catch (e) {
        throw fsError(e, 'cannot fsync', tmp);
      }
      try {
        if (opts.overwrite) fs.renameSync(tmp, file);
        else {
          fs.linkSync(tmp, file);
          fs.unlinkSync(tmp);
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new GutsError('GUTS_EXISTS', `${file} already exists`, file);
        throw fsError(e, 'cannot move into place', file);
      }
      fsyncDir(dir);
      done = true;
      return bytes;
    } finally {
      if (!done) fs.rmSync(tmp, { force: true });
    }
  }

  async put(key: string, data: Buffer | string, opts: { overwrite?: boolean } = {}): Promise<void> {
    const file = this.file(key);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      writeFileAtomic(file, data, 0o600, opts.overwrite ? 'w' : 'wx');
    } catch (e) {
      if ((e as { code?: string }).code === 'GUTS_EXISTS') throw new GutsError('GUTS_EXISTS', `${file} already exists`, file);
      throw e;
    }
  }

  async read(key: string, opts: ReadOptions = {}): Promise<Readable> {
    const file = this.file(key);
    const fh = await fs.promises.open(file, 'r').catch((e) => {
      throw fsError(e, 'cannot read', file);
    });
    return fs.createReadStream('', { fd: fh, start: opts.start, end: opts.end, highWaterMark: 1 << 20, signal: opts.signal });
  }

  async get(key: string): Promise<Buffer | null> {
    const file = this.file(key);
    try {
      return fs.readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fsError(e, 'cannot read', file);
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const file = this.file(key);
    try {
      const st = fs.statSync(file);
      return st.isFile() ? { key, size: st.size, mtime: st.mtime } : null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fsError(e, 'cannot stat', file);
    }
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const walk = (rel: string) => {
      const abs = path.join(this.url, rel);
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(abs, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && rel) return;
        throw fsError(e, 'cannot list', abs);
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue; // temp files of uploads in progress
        const key = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (prefix.startsWith(key + '/') || key.startsWith(prefix) || prefix === '') walk(key);
        } else if (e.isFile() && key.startsWith(prefix)) {
          const st = fs.statSync(path.join(this.url, key));
          out.push({ key, size: st.size, mtime: st.mtime });
        }
      }
    };
    walk('');
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const file = this.file(key);
    try {
      fs.unlinkSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(e, 'cannot remove', file);
    }
  }

  close(): void {}
}
