import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * SCRAM-SHA-256 password verifiers, computed here so that a plain password never reaches the server in a
 * SQL statement (where a failed `CREATE ROLE` would print it into the server log). This is what psql's
 * `\password` and libpq's PQencryptPasswordConn do.
 */

/** PostgreSQL's default iteration count (scram_iterations, not settable before 16). */
const ITERATIONS = 4096;
const SALT_BYTES = 16;

/**
 * PostgreSQL runs passwords through SASLprep. For ASCII passwords that is the identity; for others NFKC
 * normalisation is the part that matters in practice. Derived secrets are ASCII, so this is exact for them.
 */
const prepare = (password: string): string => (/^[\x20-\x7e]*$/.test(password) ? password : password.normalize('NFKC'));

function keys(password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(prepare(password), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

/** `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, the form pg_authid.rolpassword holds. */
export function scramVerifier(password: string, salt: Buffer = randomBytes(SALT_BYTES)): string {
  const { storedKey, serverKey } = keys(password, salt, ITERATIONS);
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Whether `verifier` (from pg_authid) accepts `password`; false for anything that is not a SCRAM verifier. */
export function scramMatches(verifier: string | null, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier ?? '');
  if (!m) return false;
  const { storedKey, serverKey } = keys(password, Buffer.from(m[2], 'base64'), Number(m[1]));
  const wantStored = Buffer.from(m[3], 'base64');
  const wantServer = Buffer.from(m[4], 'base64');
  return (
    wantStored.length === storedKey.length &&
    wantServer.length === serverKey.length &&
    timingSafeEqual(wantStored, storedKey) &&
    timingSafeEqual(wantServer, serverKey)
  );
}
