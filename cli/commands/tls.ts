import type { Argv } from 'yargs';
import type { CliContext, GlobalArgs } from '../context.js';
import { daysUntilExpiry, readCertificate } from '../../sidecar/shared/certificates.js';
import { usageError } from '../output.js';
import { CONSUL_DATACENTER, NODE_DAYS, initClusterTls, parseConsulDatacenter, parseTlsNode } from '../tls.js';

/** `hactl cluster tls ...`: the cluster's CA and the nodes' certificates. */
export const tlsCommands = (cli: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> =>
  cli.command('tls', "Make the cluster's CA and its nodes' certificates", (y) =>
    y
      .command(
        'init',
        'Make a CA and one certificate per node (its name, its address and server.<dc>.consul as SANs, for server and client use) in --dir; keys are 0600',
        (c) =>
          c
            .option('dir', { type: 'string', demandOption: true, describe: 'where to write ca.crt, ca.key and <node>.crt/.key' })
            .option('node', { type: 'string', array: true, demandOption: true, describe: 'a node as name=address (repeat per node)' })
            .option('cluster-name', { type: 'string', default: 'main', describe: "the cluster's name, in the CA's subject" })
            .option('days', {
              type: 'number',
              default: NODE_DAYS,
              describe: 'how long the node certificates are valid',
            })
            .option('consul-datacenter', {
              type: 'string',
              default: CONSUL_DATACENTER,
              describe: "Consul's datacenter: node certificates name server.<it>.consul, which Consul's verify_server_hostname checks",
            }),
        async (argv) => {
          if (!Number.isInteger(argv.days) || argv.days < 1 || argv.days > NODE_DAYS) throw usageError(`--days takes a whole number from 1 to ${NODE_DAYS}`, 'bad_value');
          const nodes = argv.node.map(parseTlsNode);
          const datacenter = parseConsulDatacenter(argv.consulDatacenter);
          const files = await initClusterTls(argv.dir, argv.clusterName, nodes, argv.days, datacenter);
          ctx.io.out(`CA certificate: ${files.caFile}  (copy it to every node beside its own certificate and key)`);
          ctx.io.out(`CA key:         ${files.caKeyFile}  (keep it off the nodes; it signs new certificates)`);
          for (const n of files.nodes) ctx.io.out(`${n.name}: ${n.certFile} ${n.keyFile}  (expires in ${daysUntilExpiry(readCertificate(n.certFile))} days)`);
        },
      )
      .demandCommand(1, 'say which tls command: init'),
  );
