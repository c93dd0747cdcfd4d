// The package root, found the same way from src/ (tests) and dist/src/ (CLI).
import * as fs from 'node:fs';
import * as path from 'node:path';

function findRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'guts-store') return dir;
    if (path.dirname(dir) === dir) throw new Error(`guts-store package root not found above ${start}`);
  }
}

export const PACKAGE_ROOT = findRoot(__dirname);
export const CLI_BIN = path.join(PACKAGE_ROOT, 'bin', 'guts-node.js');
