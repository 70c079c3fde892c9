import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { renderTemplate } from '../../cli/local/consul.js';
import { projectRoot } from '../../cli/local/paths.js';
import type { TestCluster } from './cluster.js';
import { haproxyAddress, TEST_NET } from './net.js';

/** The real HAProxy of the local cluster (docker/haproxy-local.cfg.tmpl), in front of a test cluster. */
export class TestHaproxy {
  readonly postgres = { host: haproxyAddress, port: 5432 };
  private readonly socket: string;

  constructor(private readonly cluster: TestCluster) {
    this.socket = join(cluster.baseDir, 'haproxy.sock');
  }

  /** Starts HAProxy as one of the cluster's processes (stopped with it). */
  start(): void {
    const config = join(this.cluster.baseDir, 'haproxy.cfg');
    const text = renderTemplate(readFileSync(join(projectRoot(), 'docker', 'haproxy-local.cfg.tmpl'), 'utf8'), { RUN_DIR: this.cluster.baseDir });
    writeFileSync(config, text.replaceAll('127.0.0.', `${TEST_NET}.`));
    this.cluster.processes.start('haproxy', '/usr/sbin/haproxy', ['-db', '-f', config], join(this.cluster.baseDir, 'haproxy.log'));
  }

  async stop(): Promise<void> {
    await this.cluster.processes.stop('haproxy');
  }

  /** The sample manager's frontend (docker/haproxy-local.cfg.tmpl). */
  readonly managerUrl = `http://${haproxyAddress}:8080`;

  /** The servers HAProxy has in service for `backend` (default Postgres), from its admin socket ("UP 1/2": still in, going down). */
  inService(backend = 'postgres_leader'): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      const socket = connect(this.socket);
      let csv = '';
      socket.on('data', (d) => (csv += d.toString()));
      socket.on('error', reject);
      socket.on('end', () =>
        resolve(
          csv
            .split('\n')
            .map((l) => l.split(','))
            .filter((f) => f[0] === backend && f[1] !== 'BACKEND' && f[17].startsWith('UP'))
            .map((f) => f[1]),
        ),
      );
      socket.end('show stat\n');
    });
  }
}
