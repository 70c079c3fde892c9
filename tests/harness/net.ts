/**
 * Where a test cluster lives: node i on `<net>.<11 + i>`, HAProxy on `<net>.10`, with the production ports.
 * `HA_TEST_NET` (default `127.0.0`) moves a whole run to another loopback /24, so two suites can run side by
 * side on one machine without their ports colliding.
 */
export const TEST_NET = process.env.HA_TEST_NET ?? '127.0.0';
if (!/^127\.\d{1,3}\.\d{1,3}$/.test(TEST_NET)) throw new Error(`HA_TEST_NET must be a loopback /24 prefix like 127.0.5, not ${TEST_NET}`);

/** Node i's address; `net` puts a second cluster of one test on another /24 (the upgrade test). */
export const nodeAddress = (i: number, net = TEST_NET): string => `${net}.${11 + i}`;
export const haproxyAddress = `${TEST_NET}.10`;

/** Where each node of a test cluster lives and how its processes are spawned there. */
export interface NodePlacement {
  address(i: number): string;
  readonly haproxyAddress: string;
  /** The command line that runs `command args` as one of node i's processes (e.g. inside its network namespace). */
  wrap(i: number, command: string, args: string[]): [string, string[]];
  /**
   * Whether other processes of the machine share the nodes' addresses (loopback), so a start first checks that
   * the ports are free. A fresh network namespace holds nothing else, and its address is not this namespace's.
   */
  readonly sharedAddresses: boolean;
}

/** Every node on its own loopback address of `net`, spawned as is; `net` other than TEST_NET: a second cluster. */
export const loopbackOn = (net: string): NodePlacement => ({
  address: (i) => nodeAddress(i, net),
  haproxyAddress: `${net}.10`,
  wrap: (_i, command, args) => [command, args],
  sharedAddresses: true,
});

/** The default: every node on its own loopback address of HA_TEST_NET. */
export const loopbackPlacement: NodePlacement = loopbackOn(TEST_NET);
