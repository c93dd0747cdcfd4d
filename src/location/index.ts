// openLocation(urlOrPath): where backups (and archived WAL) live.
// "s3://bucket/prefix" -> S3Location, anything else -> a local directory.
import { GutsConfig } from '../config';
import { LocalLocation } from './local';
import { S3Location, S3Settings } from './s3';
import { Location } from './types';

export * from './types';
export { LocalLocation } from './local';
export { S3Location } from './s3';

export function isRemote(urlOrPath: string): boolean {
  return /^s3:\/\//.test(urlOrPath);
}

/** S3 settings from config.yaml backup.s3.* (the AWS environment overrides them). */
export function s3Settings(cfg?: GutsConfig): S3Settings {
  return (cfg?.backup as { s3?: S3Settings } | undefined)?.s3 ?? {};
}

export function openLocation(urlOrPath: string, cfg?: GutsConfig): Location {
  if (isRemote(urlOrPath)) return new S3Location(urlOrPath, s3Settings(cfg));
  return new LocalLocation(urlOrPath);
}

/** Splits "s3://b/p/name.tar.zst" or "/dir/name.tar.zst" into its location and key (the last path part). */
export function splitUrl(urlOrPath: string, cfg?: GutsConfig): { location: Location; key: string } {
  const i = urlOrPath.lastIndexOf('/');
  const key = urlOrPath.slice(i + 1);
  const dir = i < 0 ? '.' : urlOrPath.slice(0, i) || '/';
  return { location: openLocation(isRemote(urlOrPath) ? dir + '/' : dir, cfg), key };
}
