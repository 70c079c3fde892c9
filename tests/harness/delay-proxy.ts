import { connect, createServer, type Socket } from 'node:net';

/**
 * A delaying TCP forwarder for the fault suite (`node delay-proxy.js <delayMs> <listenHost:port=peerHost:port>...`).
 * This kernel has no netem qdisc, so latency is added in userspace: the lab starts one forwarder inside each
 * node's namespace, as user `nobody`, and nft DNATs that node's connections to a peer's ports onto it
 * (netns.ts `delayRoutes`/`faultRules`). Each accepted connection is forwarded to its peer, and every chunk,
 * in both directions, is held `delayMs` before it is written on; the connect and the end of a stream are held
 * too. Timers of one duration fire in the order they were set, so a stream stays in order.
 *
 * It runs only while its parent (the lab) does: it exits when its stdin closes, so a killed test run leaves no
 * forwarder behind. It prints `ready` once every listener is bound.
 */

interface Route {
  listenHost: string;
  listenPort: number;
  peerHost: string;
  peerPort: number;
}

function parseRoute(arg: string): Route {
  const m = /^([\d.]+):(\d+)=([\d.]+):(\d+)$/.exec(arg);
  if (!m) throw new Error(`delay-proxy: a route is listenHost:port=peerHost:port, not ${arg}`);
  return { listenHost: m[1], listenPort: Number(m[2]), peerHost: m[3], peerPort: Number(m[4]) };
}

/** Writes what `from` reads to `to`, each chunk and the end `delayMs` later; either side's error or close ends both. */
function pipeDelayed(from: Socket, to: Socket, delayMs: number): void {
  from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs));
  from.on('end', () => setTimeout(() => to.destroyed || to.end(), delayMs));
  from.on('error', () => to.destroy());
  from.on('close', () => setTimeout(() => to.destroy(), delayMs));
}

function forward(route: Route, delayMs: number): Promise<void> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    setTimeout(() => {
      if (client.destroyed) return;
      const peer = connect({ host: route.peerHost, port: route.peerPort, allowHalfOpen: true });
      peer.setNoDelay(true);
      client.setNoDelay(true);
      pipeDelayed(client, peer, delayMs);
      pipeDelayed(peer, client, delayMs);
      client.resume();
    }, delayMs);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(route.listenPort, route.listenHost, () => resolve());
  });
}

async function main(): Promise<void> {
  const [delayArg, ...routeArgs] = process.argv.slice(2);
  const delayMs = Number(delayArg);
  if (!Number.isInteger(delayMs) || delayMs < 0 || routeArgs.length === 0) throw new Error('usage: delay-proxy <delayMs> <listenHost:port=peerHost:port>...');
  await Promise.all(routeArgs.map((arg) => forward(parseRoute(arg), delayMs)));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  process.stdout.write('ready\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
