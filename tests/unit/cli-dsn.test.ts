import { withProfileCa } from '../../cli/commands/dsn.js';

describe('hactl dsn: the CA in the URI is the profile\'s', () => {
  const answer = {
    dsn: 'postgresql://manager:pw@10.0.0.1:15432/manager?sslmode=verify-full&sslrootcert=%2Fetc%2Fha%2Fca.crt',
    role: 'leader',
    sslmode: 'verify-full',
    sslrootcert: '/etc/ha/ca.crt',
  };

  test("the node's CA path gives way to the profile's, in the URI and the JSON", () => {
    expect(withProfileCa(answer, '/home/op/$1 certs/ca.crt')).toEqual({
      ...answer,
      dsn: 'postgresql://manager:pw@10.0.0.1:15432/manager?sslmode=verify-full&sslrootcert=%2Fhome%2Fop%2F%241%20certs%2Fca.crt',
      sslrootcert: '/home/op/$1 certs/ca.crt',
    });
  });

  test('without TLS, or a profile without a CA, the answer stays as it is', () => {
    const plain = { dsn: 'postgresql://manager:pw@10.0.0.1:15432/manager', role: 'leader' };
    expect(withProfileCa(plain, '/home/op/ca.crt')).toBe(plain);
    expect(withProfileCa(answer, undefined)).toBe(answer);
  });
});
