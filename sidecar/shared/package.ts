import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What ha-sidecar's package.json says, found upwards from this file (so from the sources and from dist/ alike). */
interface PackageJson {
  name?: unknown;
  version?: unknown;
}

/** The ha-sidecar checkout or installed package this code runs from. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (dir !== dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as PackageJson).name === 'ha-sidecar') return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the ha-sidecar project root above ' + fileURLToPath(import.meta.url));
}

let version: string | undefined;

/** This ha-sidecar's version: `ha-sidecar --version`, `hactl --version` and every snapshot's metadata. */
export function packageVersion(): string {
  version ??= String((JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as PackageJson).version);
  return version;
}
