import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

/**
 * A delaying TCP forwarder for the fault suite (`node delay-proxy.js <delayMs> <listenHost:port=peerHost:port>...`).
 * This kernel has no netem qdisc, so latency is added in userspace: the lab starts one forwarder inside each
 * node's namespace, as user `nobody`, and nft DNATs that node's connections to its peers' ports onto it
 * (netns.ts `delayRoutes`/`delayRules`). Each accepted connection is forwarded to its peer, and every chunk,
 * in both directions, and the end of each stream, is held for the current delay before it is written on.
 *
 * The delay changes at run time by a line `delay <ms>` on stdin, so the lab can route every connection through
 * the forwarders before the cluster starts (at 0 ms) and add latency to live connections later. Each direction
 * is a FIFO whose due times never decrease, so a stream stays in order when the delay shrinks.
 *
 * It runs only while its parent (the lab) does: it exits when its stdin closes, so a killed test run leaves no
 * forwarder behind. It prints `ready` once every listener is bound, and `delay <ms>` after each change.
 */

interface Route {
  listenHost: string;
  listenPort: number;
  peerHost: string;
  peerPort: number;
}

let delayMs = 0;

function parseRoute(arg: string): Route {
  const m = /^([\d.]+):(\d+)=([\d.]+):(\d+)$/.exec(arg);
  if (!m) throw new Error(`delay-proxy: a route is listenHost:port=peerHost:port, not ${arg}`);
  return { listenHost: m[1], listenPort: Number(m[2]), peerHost: m[3], peerPort: Number(m[4]) };
}

/** Runs actions in the order given, each no earlier than the delay in force when it was queued. */
function delayedQueue(): (act: () => void) => void {
  const queue: { due: number; act: () => void }[] = [];
  let armed = false;
  const arm = () => {
    armed = true;
    setTimeout(() => {
      armed = false;
      while (queue.length > 0 && queue[0].due <= performance.now()) queue.shift()!.act();
      if (queue.length > 0) arm();
    }, Math.max(0, queue[0].due - performance.now()));
  };
  return (act) => {
    queue.push({ due: Math.max(performance.now() + delayMs, queue.at(-1)?.due ?? 0), act });
    if (!armed) arm();
  };
}

/** Writes what `from` reads to `to`, each chunk and the end held by the delay; either side's error or close ends both. */
function pipeDelayed(from: Socket, to: Socket): void {
  const later = delayedQueue();
  from.on('data', (chunk) => later(() => to.destroyed || to.write(chunk)));
  from.on('end', () => later(() => to.destroyed || to.end()));
  from.on('error', () => to.destroy());
  from.on('close', () => later(() => to.destroy()));
}

function forward(route: Route): Promise<void> {
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const peer = connect({ host: route.peerHost, port: route.peerPort, allowHalfOpen: true });
    peer.setNoDelay(true);
    client.setNoDelay(true);
    pipeDelayed(client, peer);
    pipeDelayed(peer, client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(route.listenPort, route.listenHost, () => resolve());
  });
}

async function main(): Promise<void> {
  const [delayArg, ...routeArgs] = process.argv.slice(2);
  delayMs = Number(delayArg);
  if (!Number.isInteger(delayMs) || delayMs < 0 || routeArgs.length === 0) throw new Error('usage: delay-proxy <delayMs> <listenHost:port=peerHost:port>...');
  await Promise.all(routeArgs.map((arg) => forward(parseRoute(arg))));
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const m = /^delay (\d+)$/.exec(line.trim());
    if (!m) return void process.stderr.write(`delay-proxy: unknown command ${line}\n`);
    delayMs = Number(m[1]);
    process.stdout.write(`delay ${delayMs}\n`);
  });
  lines.on('close', () => process.exit(0));
  process.stdout.write('ready\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
