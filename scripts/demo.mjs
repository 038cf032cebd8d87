// `npm run demo`: a real failover on the built-in OVH emulator. It starts
// `ipmove emulate ovh`, then runs the same commands a carp/keepalived hook would.
import { spawnSync } from 'node:child_process'
import { BIN, isolatedEnv, startEmulator } from './emulator-process.mjs'

const emulator = await startEmulator(['--pending-ms', '4000'])
const env = isolatedEnv(emulator.env)

function ipmove(...args) {
  console.log(`\n$ ipmove ${args.join(' ')}`)
  const { status } = spawnSync(process.execPath, [BIN, ...args], { env, stdio: 'inherit' })
  console.log(`(exit ${status})`)
  return status
}

let failed = false
try {
  console.log('OVH API emulator running at', env.OVH_ENDPOINT)
  failed ||= ipmove('status', '--project', 't18s', '--ip', '203.0.113.10') !== 0
  failed ||= ipmove('--project', 't18s', '--ip', '203.0.113.10', '--instance', 'bi-edge-sbg-2') !== 0
  failed ||= ipmove('--project', 't18s', '--ip', '203.0.113.10', '--instance', 'bi-edge-sbg-2') !== 0
  failed ||= ipmove('status', '--project', 't18s', '--ip', '203.0.113.10', '--json') !== 0
} finally {
  await emulator.stop()
}
process.exitCode = failed ? 1 : 0
