import { faultRules } from '../harness/netns.js';

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
