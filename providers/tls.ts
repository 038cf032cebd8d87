import { usageError } from '../src/errors.js'

/**
 * NODE_TLS_REJECT_UNAUTHORIZED=0 makes Node accept any certificate on every
 * connection, with one easily missed line on stderr. ipmove runs as root from
 * hooks whose output few read, sending credentials that let their holder move
 * the IP: it refuses (exit 2) rather than warns. A test CA goes in NODE_EXTRA_CA_CERTS.
 * Cloud providers call this before they load.
 */
export function refuseUncheckedTls(): void {
  if (process.env.NODE_TLS_REJECT_UNAUTHORIZED === '0') {
    throw usageError(
      'NODE_TLS_REJECT_UNAUTHORIZED=0 turns off TLS certificate checks, so anyone on the path could take the API credentials; unset it (to trust a test CA, use NODE_EXTRA_CA_CERTS)',
    )
  }
}
