/**
 * Runs probes inside a network namespace for the kernel tests, the way the
 * daemon will: `ip netns exec NS node probe-agent.mjs '<request>'`. It prints
 * one JSON line per probe result and per check event as they happen, so a test
 * can act (take a link down) and time what the probes saw; on SIGTERM it
 * stops the probes and prints how many processes the ICMP probes spawned.
 *
 *   request: { probes: ProbeSpec[], check?: { kind, timings } }
 */
import { spawn } from 'node:child_process'
import { Check, type CheckKind, type HealthTimings, runCheck } from '../../src/health.js'
import { icmpProbe } from '../../src/probes/icmp.js'
import { createProbe, type Probe, type ProbeSpec } from '../../src/probes/index.js'

interface Request {
  probes: ProbeSpec[]
  check?: { kind: CheckKind; timings: HealthTimings }
}

const request = JSON.parse(process.argv[2] ?? '') as Request
const say = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`)

let spawns = 0
const counted = ((...args: Parameters<typeof spawn>) => {
  spawns++
  const child = spawn(...args)
  say({ t: 'spawn', pid: child.pid })
  return child
}) as typeof spawn

const probes: Probe[] = request.probes.map((spec) =>
  spec.kind === 'icmp' ? icmpProbe(spec, { spawn: counted }) : createProbe(spec),
)

let stop: () => Promise<unknown>
if (request.check) {
  const check = new Check(request.check.kind, probes, request.check.timings)
  const running = runCheck(
    check,
    probes,
    (event) => say({ t: 'event', ...event }),
    (probe, result) => say({ t: 'result', probe, ...result }),
  )
  stop = running.stop
} else {
  for (const probe of probes) probe.start((result) => say({ t: 'result', probe: probe.label, ...result }))
  stop = () => Promise.all(probes.map((p) => p.stop()))
}
say({ t: 'started' })

process.once('SIGTERM', async () => {
  await stop()
  say({ t: 'stopped', spawns })
})
