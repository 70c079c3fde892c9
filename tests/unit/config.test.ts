import { describe, expect, it } from '@jest/globals';
import { parseConfig } from '../../sidecar/config.js';

/** parseConfig's `tls` section and the API URL it derives (the files themselves are checked at start, certificates.test.ts). */

const base = { nodeName: 'n1', address: '10.0.0.1', clusterAddresses: ['10.0.0.1'], clusterToken: 'x'.repeat(16), dataDir: '/tmp/n1' };
const tls = { certFile: '/etc/ha/n1.crt', keyFile: '/etc/ha/n1.key', caFile: '/etc/ha/ca.crt' };

describe('parseConfig: tls', () => {
  it('without a tls section the API URL is http, and Consul is the agent\'s HTTP API on 8500', () => {
    const config = parseConfig(base);
    expect(config.apiUrl).toBe('http://10.0.0.1:8008');
    expect(config.consul.url).toBe('http://10.0.0.1:8500');
    expect(config.tls).toBeUndefined();
  });

  it('with one it is https on the same port, verifyClient defaults to false, and Consul is its HTTPS API on 8501', () => {
    const config = parseConfig({ ...base, apiPort: 9008, tls });
    expect(config.apiUrl).toBe('https://10.0.0.1:9008');
    expect(config.consul.url).toBe('https://10.0.0.1:8501');
    expect(config.tls).toEqual({ ...tls, verifyClient: false });
    expect(parseConfig({ ...base, tls, consul: { url: 'https://127.0.0.1:8501' } }).consul.url).toBe('https://127.0.0.1:8501');
  });

  it('a section without a file, or with an unknown key, is invalid_config naming the field', () => {
    expect(() => parseConfig({ ...base, tls: { certFile: tls.certFile, caFile: tls.caFile } })).toThrow(expect.objectContaining({ code: 'invalid_config', message: expect.stringContaining('tls.keyFile') }));
    expect(() => parseConfig({ ...base, tls: { ...tls, verify: true } })).toThrow(expect.objectContaining({ code: 'invalid_config', message: expect.stringContaining('unknown key tls.verify') }));
  });
});
