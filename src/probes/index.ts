/**
 * Health probes for `ipmove watch`: one module per kind behind one interface
 * (`Probe`, in probe.ts). A new kind is one file here plus one line in
 * `createProbe`.
 *
 * How the daemon consumes them (three layers, each knowing only the next):
 *
 *   probes ──ProbeResult──▶ checks (src/health.ts) ──up/down──▶ decision ──desired holder──▶ converge core
 *
 * 1. Probes only observe. Each one, once started, calls back with a
 *    `ProbeResult` per answer (ok, when, how long, one line of detail) and
 *    never decides anything. Their results are also what `ipmove status`
 *    shows as "last probe results".
 * 2. A check (`Check` in src/health.ts) groups the probes of one question and
 *    turns their results into up/down with heartbeat's timings (initdead,
 *    warntime, deadtime) plus rise. There are three questions per failover
 *    IP: is the peer alive (any of its probes answering is enough), is this
 *    node healthy (all of its probes must be: links, upstream witness, local
 *    service), and does the service at the failover IP still answer as
 *    clients see it (any answer vetoes a takeover). A check is pure: the
 *    daemon feeds it results and wakes it at `nextDeadline()`, so tests drive
 *    it with a fake clock.
 * 3. The decision ("who should hold?") reads the three verdicts plus role,
 *    priority, preempt and the provider's holder: self down → fault (yield);
 *    peer down and witness down and self up → claim; peer up with a higher
 *    priority and preempt → yield after the preempt delay; otherwise keep the
 *    current role. Each check event is a reason to decide again, as is the
 *    slow timer that re-reads the provider's holder.
 * 4. The answer (claim or yield) goes to the converge core, which makes the
 *    API and this host match it; its result feeds the timeline in status.
 */
import { type CommandSpec, commandProbe } from './command.js'
import { type HttpSpec, httpProbe } from './http.js'
import { type IcmpSpec, icmpProbe } from './icmp.js'
import { type LinkSpec, linkProbe } from './link.js'
import type { Probe } from './probe.js'
import { type TcpSpec, tcpProbe } from './tcp.js'

export type { Probe, ProbeResult, Timing } from './probe.js'
export type { CommandSpec, HttpSpec, IcmpSpec, LinkSpec, TcpSpec }

/** A probe as the config describes it. */
export type ProbeSpec =
  | ({ kind: 'icmp' } & IcmpSpec)
  | ({ kind: 'tcp' } & TcpSpec)
  | ({ kind: 'http' } & HttpSpec)
  | ({ kind: 'command' } & CommandSpec)
  | ({ kind: 'link' } & LinkSpec)

/** Build a probe; a spec that cannot work throws a usage error (exit 2) that names the probe. */
export function createProbe(spec: ProbeSpec): Probe {
  switch (spec.kind) {
    case 'icmp':
      return icmpProbe(spec)
    case 'tcp':
      return tcpProbe(spec)
    case 'http':
      return httpProbe(spec)
    case 'command':
      return commandProbe(spec)
    case 'link':
      return linkProbe(spec)
  }
}
