import { isIP } from 'node:net'

/** A throw-away CA and a server certificate it signed, all PEM. */
export interface TlsMaterial {
  /** The CA certificate: what clients trust (NODE_EXTRA_CA_CERTS, `ca` option). */
  caCert: string
  /** The server certificate and its private key. */
  cert: string
  key: string
  /** With `withClient`: a client certificate the same CA signed (for servers that ask for one). */
  client?: { cert: string; key: string }
}

const DEFAULT_NAMES = ['127.0.0.1', 'localhost', '::1']

/**
 * Make a CA and a leaf certificate for the emulator, valid for loopback names and
 * any `extraNames` (the host it listens on). Clients then verify TLS as they do
 * against the real API, instead of switching verification off. EC P-256 keys
 * keep generation in the milliseconds. The CA key is dropped: nothing else can
 * ever be signed with it.
 */
export async function generateTls(
  extraNames: readonly string[] = [],
  withClient = false,
): Promise<TlsMaterial> {
  // Loaded only here: the emulator is the one user of this package. It is
  // CommonJS, so take `default` (module.exports), which Node and the bundle agree on.
  const { generate } = (await import('selfsigned')).default
  const now = new Date()
  // An hour of slack before now, for a client whose clock is a little behind.
  const notBeforeDate = new Date(now.getTime() - 3600_000)
  const notAfterDate = new Date(now.getTime() + 30 * 86_400_000)
  const ca = await generate([{ name: 'commonName', value: 'ipmove emulator throw-away CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  })
  type Extensions = NonNullable<Parameters<typeof generate>[1]>['extensions']
  /** A leaf certificate the CA signs, with an EC key. */
  const signed = (commonName: string, extensions: Extensions) =>
    generate([{ name: 'commonName', value: commonName }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      ca: { key: ca.private, cert: ca.cert },
      extensions,
    })
  const names = [...new Set([...DEFAULT_NAMES, ...extraNames])]
  const leaf = await signed('ipmove emulator', [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: names.map((name) =>
        isIP(name) ? { type: 7 as const, ip: name } : { type: 2 as const, value: name },
      ),
    },
  ])
  const material: TlsMaterial = { caCert: ca.cert, cert: leaf.cert, key: leaf.private }
  if (withClient) {
    const client = await signed('ipmove client', [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ])
    material.client = { cert: client.cert, key: client.private }
  }
  return material
}
