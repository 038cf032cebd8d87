// keepalived on the rig of bench-local.mjs, for bench-watch.mjs's side-by-side
// failover figures: the same nodes (A priority 150, B 100), the same address,
// the same link death. keepalived elects over VRRP on the bridge and carries
// the address itself (gratuitous ARP on becoming master), so its failover is
// the election alone, like ipmove watch with the local provider.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ns, run } from './bench-local.mjs'

function readComm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** Why keepalived cannot be measured here, or undefined. */
export async function keepalivedProblem() {
  const version = await run(['keepalived', '--version'])
  return version.code === 0 ? undefined : 'keepalived is not installed'
}

/** keepalived's version line, for the report. */
export async function keepalivedVersion() {
  const version = await run(['keepalived', '--version'])
  return /Keepalived v\S+/.exec(`${version.stdout}${version.stderr}`)?.[0] ?? 'keepalived'
}

/**
 * One keepalived (VRRP only) in `node`'s namespace for `address` on eth0.
 * `advertS` 1 with VRRPv2 is keepalived's default; VRRPv3 takes fractions.
 */
export function startKeepalived(node, { address, priority, advertS, vrrpVersion }) {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-benchka-'))
  const conf = join(dir, 'keepalived.conf')
  writeFileSync(
    conf,
    `global_defs {
    router_id bench-${node.name}
    vrrp_version ${vrrpVersion}
}
vrrp_instance bench {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority ${priority}
    advert_int ${advertS}
    virtual_ipaddress {
        ${address}/32 dev eth0
    }
}
`,
    { mode: 0o600 },
  )
  const vrrpPid = join(dir, 'vrrp.pid')
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns(node.name),
      'keepalived',
      '--dont-fork',
      '--log-console',
      '--vrrp',
      '--use-file',
      conf,
      '--pid',
      join(dir, 'keepalived.pid'),
      '--vrrp_pid',
      vrrpPid,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let log = ''
  child.stderr.on('data', (chunk) => {
    log = (log + chunk).slice(-10_000)
  })
  const exited = new Promise((resolve) => child.once('close', resolve))
  return {
    log: () => log,
    /** SIGTERM, as systemd stops it; its VRRP child goes with it, or is killed by its pid. */
    async stop() {
      const vrrpChild = existsSync(vrrpPid) ? Number(readFileSync(vrrpPid, 'utf8')) : undefined
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
      // It should have gone with its parent; if not, it is still keepalived under that pid.
      if (vrrpChild && readComm(vrrpChild) === 'keepalived') {
        process.kill(vrrpChild, 'SIGKILL')
        await sleep(50)
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
