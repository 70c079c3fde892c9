import { mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';

/** cgroup v1's blkio controller (this machine's kind mounts it; cgroup v2's io.max would do the same). */
const BLKIO = '/sys/fs/cgroup/blkio';

/**
 * A blkio group that throttles writes to the block device under `path`: what its processes submit themselves
 * (an fsync's writeback, direct I/O) is held to `limit`; page-cache writes still go at memory speed. A
 * process moved in takes every thread with it; children it forks later start in the group too.
 */
export class SlowDisk {
  private readonly group = `${BLKIO}/ha-test-slow-disk-${process.pid}-${Date.now()}`;

  constructor(path: string, limit: { writeIops: number } | { writeBytesPerSecond: number }) {
    mkdirSync(this.group);
    const [file, value] = 'writeIops' in limit ? ['blkio.throttle.write_iops_device', limit.writeIops] : ['blkio.throttle.write_bps_device', limit.writeBytesPerSecond];
    writeFileSync(`${this.group}/${file}`, `${deviceOf(path)} ${value}`);
  }

  /** Moves processes in; one that has exited meanwhile is left out. */
  add(...pids: number[]): void {
    for (const pid of pids) moveTo(this.group, String(pid));
  }

  /** Every process back to the root group, then the group goes. */
  release(): void {
    for (const pid of readFileSync(`${this.group}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) moveTo(BLKIO, pid);
    rmdirSync(this.group);
  }
}

/** "major:minor" of the block device holding `path` (st_dev). */
function deviceOf(path: string): string {
  const dev = statSync(path).dev;
  return `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
}

function moveTo(group: string, pid: string): void {
  try {
    writeFileSync(`${group}/cgroup.procs`, pid);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}
