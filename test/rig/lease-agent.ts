/**
 * Runs the etcd leadership (src/watch/sources/etcd.ts) inside a node's
 * namespace for the kernel tests, carrying the address on eth0 exactly while
 * it says this node leads: `ip netns exec NS node lease-agent.mjs '<request>'`.
 * It prints one JSON line per view it is given and per address change, so a
 * test can cut links and time what each node did. Lines on stdin:
 * `healthy` / `unhealthy` (own health); the tests kill it when done.
 *
 *   request: { settings: EtcdSettings, ip: string, iface: string }
 */
import { createInterface } from 'node:readline'
import { LinuxDriver } from '../../src/alias/linux.js'
import { now } from '../../src/probes/probe.js'
import { parseIp } from '../../src/validate.js'
import {
  EtcdLeadership,
  type EtcdSettings,
  type LeaseView,
  shouldHold,
} from '../../src/watch/sources/etcd.js'

interface Request {
  settings: EtcdSettings
  ip: string
  iface: string
}

const request = JSON.parse(process.argv[2] ?? '') as Request
const say = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ at: now(), ...line })}\n`)
const ip = parseIp(request.ip)
const driver = new LinuxDriver()

let carrying = false
let applying: Promise<void> = Promise.resolve()
/** Carry the address while the leadership says so; adds and removes in the order views came. */
function apply(view: LeaseView): void {
  applying = applying.then(async () => {
    const want = shouldHold(view, request.settings.unreachable)
    if (want === carrying) return
    carrying = want
    if (want) await driver.add({ ip, iface: request.iface, nodad: true })
    else await driver.remove({ ip, iface: request.iface })
    say({ t: want ? 'added' : 'removed' })
  })
}

const log = {
  info: (m: string) => say({ t: 'log', level: 'info', m }),
  warn: (m: string) => say({ t: 'log', level: 'warn', m }),
  debug: () => {},
  progress: () => {},
}
const leadership = new EtcdLeadership(request.settings, log, (view) => {
  say({ t: 'view', ...view })
  apply(view)
})
leadership.start()
say({ t: 'started' })

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'healthy') leadership.setHealthy(true)
  else if (line === 'unhealthy') leadership.setHealthy(false)
})
