import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { renderTemplate } from '../../cli/local/consul.js';
import { projectRoot } from '../../sidecar/shared/package.js';
import type { TestCluster } from './cluster.js';

/** The real HAProxy of the local cluster (docker/haproxy-local.cfg.tmpl), in front of a test cluster. */
export class TestHaproxy {
  /** The sample manager's frontend (docker/haproxy-local.cfg.tmpl). */
  readonly managerUrl: string;
  private readonly socket: string;

  constructor(private readonly cluster: TestCluster) {
    this.socket = join(cluster.baseDir, 'haproxy.sock');
    this.managerUrl = `http://${cluster.placement.haproxyAddress}:8080`;
  }

  /**
   * Where clients reach the leader's Postgres: HAProxy's port, and in a TLS cluster the SSL options of a
   * client (the CA, as verify-ca: the certificate names the node behind HAProxy). Read after `cluster.start`.
   */
  get postgres(): { host: string; port: number; ssl?: ConnectionOptions } {
    const at = { host: this.cluster.placement.haproxyAddress, port: 5432 };
    return this.cluster.tls ? { ...at, ssl: this.cluster.postgresSsl('verify-ca') } : at;
  }

  /** Starts HAProxy as one of the cluster's processes (stopped with it). */
  start(): void {
    const config = join(this.cluster.baseDir, 'haproxy.cfg');
    const text = renderTemplate(readFileSync(join(projectRoot(), 'docker', 'haproxy-local.cfg.tmpl'), 'utf8'), {
      RUN_DIR: this.cluster.baseDir,
      API_CHECK_TLS: this.cluster.tls ? `check-ssl verify required ca-file ${join(this.cluster.tlsDir, 'ca.crt')}` : '',
    });
    // The template's addresses are 127.0.0.10 (HAProxy) and 127.0.0.11, .12, .13 (the nodes).
    const placed = templateAddresses(this.cluster).reduce((t, [from, to]) => t.replaceAll(from, to), text);
    writeFileSync(config, placed);
    this.cluster.processes.start('haproxy', '/usr/sbin/haproxy', ['-db', '-f', config], join(this.cluster.baseDir, 'haproxy.log'));
  }

  async stop(): Promise<void> {
    await this.cluster.processes.stop('haproxy');
  }

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

function templateAddresses(cluster: TestCluster): [string, string][] {
  return [['127.0.0.10', cluster.placement.haproxyAddress], ...cluster.names.map((_, i): [string, string] => [`127.0.0.${11 + i}`, cluster.address(i)])];
}
