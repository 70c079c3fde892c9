import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv } from 'yargs';
import { z } from 'zod';
import { SidecarError, errorMessage, isSidecarError } from '../../sidecar/errors.js';
import { daysUntilExpiry, readCertificate } from '../../sidecar/shared/certificates.js';
import { servedCertificate, urlPort } from '../../sidecar/shared/port-probe.js';
import { ClusterViewSchema, parseAnswer, type Member } from '../api.js';
import { Session, type CliContext, type GlobalArgs } from '../context.js';
import { usageError } from '../output.js';
import { normalizeManagerUrl } from '../profiles.js';
import { CONSUL_DATACENTER, NODE_DAYS, checkRotationDir, initClusterTls, parseConsulDatacenter, parseTlsNode, rotateNodeCertificate, type RotationCa } from '../tls.js';
import { clusterProblem } from './cluster.js';

/** How long a node gets, after its reload, to serve its new certificate on every port. */
const ROTATE_WAIT_MS = 30_000;
const ROTATE_POLL_MS = 200;
/** One handshake's limit while checking what a node serves. */
const HANDSHAKE_TIMEOUT_MS = 2_000;

const DsnPortSchema = z.looseObject({ port: z.number() });
/** A reload's answer says whether the node reloaded its Consul agent, and whether it serves the new certificate then. */
const ReloadSchema = z.looseObject({
  tls: z.looseObject({ consul: z.object({ port: z.number(), servesNewCertificate: z.boolean() }).optional() }).optional(),
});

const checkDays = (days: number) => {
  if (!Number.isInteger(days) || days < 1 || days > NODE_DAYS) throw usageError(`--days takes a whole number from 1 to ${NODE_DAYS}`, 'bad_value');
};

/** A member to rotate: where its API and (when it runs one) its Postgres listen. */
interface RotationTarget {
  name: string;
  apiUrl: string;
  host: string;
  ports: { port: number; what: string; postgres: boolean }[];
}

/** The member's API URL and, when it runs Postgres, its port as the member's own `/dsn` names it. */
async function rotationTarget(session: Session, member: Member): Promise<RotationTarget> {
  if (typeof member.apiUrl !== 'string' || member.apiUrl === '') throw new SidecarError('unknown_node', `member "${member.name}" publishes no apiUrl; nothing changed`, 404);
  const apiUrl = normalizeManagerUrl(member.apiUrl);
  const api = new URL(apiUrl);
  const ports = [{ port: urlPort(api), what: 'API', postgres: false }];
  if (member.pgRole !== undefined && member.pgRole !== null) {
    const dsn = await session.direct(apiUrl, { method: 'GET', path: `/dsn?member=${encodeURIComponent(member.name)}` });
    ports.push({ port: parseAnswer(DsnPortSchema, dsn, 'GET /dsn').port, what: 'Postgres', postgres: true });
  }
  return { name: member.name, apiUrl, host: api.hostname.replace(/^\[|\]$/g, ''), ports };
}

/** The SHA-256 fingerprint `target` serves on each of its ports (verified with the rotation's CA). */
function servedFingerprints(target: RotationTarget, ca: RotationCa): Promise<string[]> {
  return Promise.all(target.ports.map(async (p) => (await servedCertificate(target.host, p.port, p.postgres, { ca: ca.pem }, HANDSHAKE_TIMEOUT_MS)).fingerprint256));
}

/**
 * `tls rotate`: one node at a time, standbys first and the leader last (as a rolling restart goes), a new key
 * and certificate into `--dir`, the node's reload (`POST /postgres/reload`: the API, its peer client and
 * Postgres take the new files without a restart), then a wait until the node serves the new certificate on
 * its API and Postgres ports before the next. No role changes: a reload touches no lock, lease or data, so
 * no failover can follow, and since the CA stays the same every client and peer accepts the new
 * certificates as it did the old ones. Everything is checked before the first file changes.
 */
async function rotate(ctx: CliContext, session: Session, dir: string, days: number, caKey: string | undefined): Promise<void> {
  const answer = await session.any({ method: 'GET', path: '/cluster' });
  const view = parseAnswer(ClusterViewSchema, answer, 'GET /cluster');
  const problem = clusterProblem(view, answer.manager);
  if (problem) throw new SidecarError(problem.code, `${problem.message}: rotate a healthy cluster only (each node must come back before the next); nothing changed`, problem.status);
  const leader = view.leader?.name;
  const members = [...view.members.filter((m) => m.name !== leader), ...view.members.filter((m) => m.name === leader)];
  const ca = await checkRotationDir(dir, members.map((m) => m.name), caKey);
  const targets = [];
  for (const m of members) targets.push(await rotationTarget(session, m));
  // A node whose config names other files (another host's directory) would reload and go on serving its old
  // certificate; one of another CA would be handed a certificate its peers refuse. Both are refused here.
  for (const t of targets) {
    await servedFingerprints(t, ca).catch((e: unknown) => {
      throw new SidecarError('tls_ca_mismatch', `${t.name} serves a certificate that ${ca.crt} does not verify (${errorMessage(e)}): is --dir this cluster's? Nothing changed`, 400);
    });
  }

  const done: string[] = [];
  for (const t of targets) {
    const t0 = performance.now();
    const left = targets.slice(targets.indexOf(t) + 1).map((x) => x.name);
    const failed = (why: string) =>
      new SidecarError(
        'tls_rotate_failed',
        `${t.name}: ${why}. Rotated: ${done.join(', ') || 'none'}; ${t.name} has its new files in ${dir}; ${left.length > 0 ? `${left.join(', ')} keep their old ones` : 'no node left'}`,
        502,
      );
    const issued = await rotateNodeCertificate(dir, ca, t.name, days);
    let consul;
    try {
      const reload = await session.direct(t.apiUrl, { method: 'POST', path: '/postgres/reload', body: {} });
      consul = parseAnswer(ReloadSchema, reload, 'POST /postgres/reload').tls?.consul;
    } catch (e) {
      throw failed(`the reload failed (${isSidecarError(e) ? `${e.code}: ` : ''}${errorMessage(e)})`);
    }
    let served: string[] = [];
    for (const deadline = performance.now() + ROTATE_WAIT_MS; ; await sleep(ROTATE_POLL_MS)) {
      served = await servedFingerprints(t, ca).catch(() => []);
      if (served.length === t.ports.length && served.every((f) => f === issued.fingerprint256)) break;
      if (performance.now() > deadline) {
        const old = t.ports.filter((_, i) => served[i] !== issued.fingerprint256).map((p) => `${p.what} port ${p.port}`);
        throw failed(`${old.join(' and ')} did not serve the new certificate ${ROTATE_WAIT_MS / 1000} s after the reload (does its tls.certFile name ${issued.certFile}?)`);
      }
    }
    done.push(t.name);
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    const byConsul = !consul ? '' : consul.servesNewCertificate ? `, and by its Consul agent on ${consul.port}` : `; its Consul agent on ${consul.port} has certificate files of its own`;
    ctx.io.out(`${t.name}: new certificate served on ${t.ports.map((p) => p.port).join(' and ')} after ${seconds} s${byConsul} (expires in ${daysUntilExpiry(readCertificate(issued.certFile))} days)`);
  }
  ctx.io.out(`rotated ${done.length} node certificate${done.length === 1 ? '' : 's'} in ${dir}; the CA is unchanged, so clients keep working`);
}

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
          checkDays(argv.days);
          const nodes = argv.node.map(parseTlsNode);
          const datacenter = parseConsulDatacenter(argv.consulDatacenter);
          const files = await initClusterTls(argv.dir, argv.clusterName, nodes, argv.days, datacenter);
          ctx.io.out(`CA certificate: ${files.caFile}  (copy it to every node beside its own certificate and key)`);
          ctx.io.out(`CA key:         ${files.caKeyFile}  (keep it off the nodes; it signs new certificates)`);
          for (const n of files.nodes) ctx.io.out(`${n.name}: ${n.certFile} ${n.keyFile}  (expires in ${daysUntilExpiry(readCertificate(n.certFile))} days)`);
        },
      )
      .command(
        'rotate',
        "Replace every member's certificate and key in --dir (same CA, subject and SANs) one node at a time, standbys first, " +
          'each reloaded and serving its new certificate before the next; no restart, no failover',
        (c) =>
          c
            .option('dir', { type: 'string', demandOption: true, describe: "the directory of tls init: ca.crt, ca.key and each member's <node>.crt/.key, the files the nodes' configs name" })
            .option('ca-key', { type: 'string', describe: 'the CA key when it is kept elsewhere than --dir (default: <dir>/ca.key)' })
            .option('days', { type: 'number', default: NODE_DAYS, describe: 'how long the new certificates are valid' }),
        async (argv) => {
          checkDays(argv.days);
          await rotate(ctx, await Session.open(ctx, argv), argv.dir, argv.days, argv.caKey);
        },
      )
      .demandCommand(1, 'say which tls command: init or rotate'),
  );
