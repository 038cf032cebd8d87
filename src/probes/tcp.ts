/** TCP connect: the port accepts a connection. The connection is closed at once, nothing is sent. */
import { connect } from 'node:net'
import { usageError } from '../errors.js'
import { type Probe, periodicProbe, reason, type Timing } from './probe.js'

export interface TcpSpec extends Timing {
  /** An address or a name (a name is resolved on every run, within the timeout). */
  host: string
  port: number
  /** Local address to connect from, to test one path of several. */
  source?: string
}

export function tcpProbe(spec: TcpSpec): Probe {
  const { host, port, source } = spec
  if (!host) throw usageError('tcp probe: host is empty')
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw usageError(`tcp probe ${host}: port must be a whole number from 1 to 65535`)
  }
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return periodicProbe(`tcp ${where}`, spec, (signal) => {
    return new Promise((resolve) => {
      const socket = connect({ host, port, localAddress: source })
      const finish = (ok: boolean, detail: string) => {
        signal.removeEventListener('abort', onAbort)
        socket.destroy()
        resolve({ ok, detail })
      }
      const onAbort = () => finish(false, 'aborted')
      signal.addEventListener('abort', onAbort)
      socket.once('connect', () => finish(true, 'connected'))
      socket.once('error', (error) => finish(false, reason(error)))
    })
  })
}
