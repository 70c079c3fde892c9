import { createServer } from 'node:net';
import { ConsulConnection } from '../../sidecar/consul/connection.js';
import { consulError } from '../../sidecar/consul/errors.js';

/** The `consul` package rejects a non-2xx answer with an error carrying the HTTP status as `statusCode`. */
const answered = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

describe('consul errors: no answer is consul_unavailable, a refusal is named as one', () => {
  test('403 and 401 are ACL denials: the token lacks a permission or is unknown', () => {
    const e = consulError('read of ha-sidecar/c/leader', answered(403, 'Permission denied'));
    expect([e.code, e.status, e.details]).toEqual(['consul_acl_denied', 502, { httpStatus: 403 }]);
    expect(e.message).toMatch(/^Consul read of ha-sidecar\/c\/leader denied \(HTTP 403: Permission denied\).*sidecar-policy\.hcl/);
    expect(consulError('session creation', answered(401, 'unauthorized')).code).toBe('consul_acl_denied');
  });

  test('another 4xx is a refusal of the request', () => {
    const e = consulError('session creation', answered(400, 'invalid check'));
    expect([e.code, e.status, e.message]).toEqual(['consul_refused', 502, 'Consul session creation refused (HTTP 400: invalid check)']);
  });

  test('5xx (no raft leader), 429 (rate limit), timeouts and connection errors are Consul being unavailable', () => {
    for (const cause of [answered(500, 'No cluster leader'), answered(429, 'too many requests'), new Error('request timed out (3000ms)'), Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })]) {
      const e = consulError('lock acquire', cause);
      expect([e.code, e.status]).toEqual(['consul_unavailable', 503]);
    }
  });

  test('a failed TLS handshake is consul_tls_failed, saying which end refused what', () => {
    const tls = (code: string) => consulError('read of ha-sidecar/c/initialize', Object.assign(new Error(code), { code }));
    expect([tls('UNABLE_TO_VERIFY_LEAF_SIGNATURE').code, tls('UNABLE_TO_VERIFY_LEAF_SIGNATURE').message]).toEqual([
      'consul_tls_failed',
      expect.stringMatching(/^Consul read of ha-sidecar\/c\/initialize failed in TLS: the agent's certificate is not of tls\.caFile's CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\); .*https:\/\/ on Consul's HTTPS port \(8501\)$/),
    ]);
    expect(tls('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED').message).toMatch(/asks for a client certificate/);
    expect(tls('ERR_SSL_WRONG_VERSION_NUMBER').message).toMatch(/answers plain HTTP/);
    // Plain HTTP to Consul's HTTPS port: Go answers 400 with this body.
    const plain = Object.assign(new Error('consul: kv.get: bad request'), { statusCode: 400, response: { body: Buffer.from('Client sent an HTTP request to an HTTPS server.\n') } });
    expect(consulError('read', plain)).toMatchObject({ code: 'consul_tls_failed', message: expect.stringMatching(/consul\.url is http:\/\/ but the agent speaks HTTPS/) });
    // Any other 400 stays a refusal, a reset connection Consul being unavailable.
    expect(consulError('read', answered(400, 'bad request')).code).toBe('consul_refused');
    expect(tls('ECONNRESET').code).toBe('consul_unavailable');
  });

  test('a call to an agent that is not listening fails as consul_unavailable', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const connection = new ConsulConnection({ url: `http://127.0.0.1:${port}`, cluster: 'c', timeoutMs: 2_000 }, 'n1');
    await expect(connection.getEntry(connection.key('leader'))).rejects.toMatchObject({ code: 'consul_unavailable', status: 503 });
    expect(connection.lastContactAgeSeconds()).toBeNull();
  });
});
