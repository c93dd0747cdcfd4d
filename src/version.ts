import * as fs from 'node:fs';
import * as path from 'node:path';

import { PACKAGE_ROOT } from './paths';

export const VERSION: string = (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
