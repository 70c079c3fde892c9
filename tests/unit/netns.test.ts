import { DELAYED_PORTS, delayRoutes, delayRules, faultRules } from '../harness/netns.js';

/** The nft scripts of the fault suite's cuts (tests/harness/netns.ts), checked without a namespace. */
describe('faultRules', () => {
  const peers = ['10.213.8.12', '10.213.8.13'];

  test('isolate drops both directions to and from the peers only, replacing an earlier fault table', () => {
    const script = faultRules(peers, { kind: 'isolate' });
    expect(script.startsWith('table inet hafault\ndelete table inet hafault\ntable inet hafault {')).toBe(true);
    expect(script).toContain('chain input {\n    type filter hook input priority 0; policy accept;\n    ip saddr { 10.213.8.12, 10.213.8.13 } drop\n  }');
    expect(script).toContain('chain output {\n    type filter hook output priority 0; policy accept;\n    ip daddr { 10.213.8.12, 10.213.8.13 } drop\n  }');
  });

  test('one direction drops one hook only', () => {
    expect(faultRules(peers, { kind: 'outbound' })).not.toContain('saddr');
    expect(faultRules(peers, { kind: 'outbound' })).toContain('ip daddr { 10.213.8.12, 10.213.8.13 } drop');
    expect(faultRules(peers, { kind: 'inbound' })).not.toContain('daddr');
  });

  test('a port cut drops that TCP port as server and as client, and nothing else', () => {
    const script = faultRules(peers, { kind: 'port', port: 8300 });
    for (const rule of ['saddr { 10.213.8.12, 10.213.8.13 } tcp dport 8300', 'saddr { 10.213.8.12, 10.213.8.13 } tcp sport 8300', 'daddr { 10.213.8.12, 10.213.8.13 } tcp dport 8300', 'daddr { 10.213.8.12, 10.213.8.13 } tcp sport 8300']) {
      expect(script).toContain(`ip ${rule} drop`);
    }
    expect(script.match(/drop/g)).toHaveLength(4);
  });

  test('loss drops a random share of outbound packets only', () => {
    const script = faultRules(peers, { kind: 'loss', percent: 5 });
    expect(script).toContain('ip daddr { 10.213.8.12, 10.213.8.13 } numgen random mod 100 < 5 drop');
    expect(script.match(/drop/g)).toHaveLength(1);
  });
});

describe('delayRoutes', () => {
  const addresses = ['10.213.8.11', '10.213.8.12', '10.213.8.13'];

  test('every peer port of a node gets a distinct listen port on its own address, and it never routes to itself', () => {
    const routes = delayRoutes(addresses, 1);
    expect(routes).toHaveLength(2 * DELAYED_PORTS.length);
    expect(routes.every((r) => r.listen === '10.213.8.12' && r.peer !== '10.213.8.12')).toBe(true);
    expect(new Set(routes.map((r) => r.listenPort)).size).toBe(routes.length);
    expect(routes[0]).toEqual({ peer: '10.213.8.11', port: 8300, listen: '10.213.8.12', listenPort: 40_000 });
  });

  test('delayRules redirects each peer port to its forwarder, except the forwarder user\'s own connections', () => {
    const script = delayRules(delayRoutes(addresses, 0));
    expect(script.startsWith('table inet hadelay {\n  chain nat_output {\n    type nat hook output priority -100; policy accept;\n')).toBe(true);
    expect(script).toContain('    meta skuid != 65534 ip daddr 10.213.8.12 tcp dport 8300 dnat ip to 10.213.8.11:40010\n');
    expect(script).toContain('    meta skuid != 65534 ip daddr 10.213.8.13 tcp dport 8008 dnat ip to 10.213.8.11:40024\n');
    expect(script.match(/dnat ip to/g)).toHaveLength(2 * DELAYED_PORTS.length);
    expect(script).not.toContain('drop');
  });
});
