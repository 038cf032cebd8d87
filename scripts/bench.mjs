// `npm run bench`: the figures the issues set targets for, as ratios.
//  - start-up: `ipmove --version`, and a real command up to its first decision
//    (`ipmove move` refusing a bad IP, which loads oclif and the command), both
//    against `node -e 0` on the same machine in the same run;
//  - API round trips before the write, cold (empty id cache) and warm, against
//    the OVH emulator.
import { spawnSync } from 'node:child_process'
import { BIN, isolatedEnv, startEmulator } from './emulator-process.mjs'

const RUNS = Number(process.env.BENCH_RUNS ?? 20)

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function time(argv, env = process.env) {
  const samples = []
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint()
    spawnSync(process.execPath, argv, { env, stdio: 'ignore' })
    samples.push(Number(process.hrtime.bigint() - started) / 1e6)
  }
  return median(samples)
}

const env = isolatedEnv()
// Warm the OS file cache and Node's compile cache before measuring.
time(['-e', '0'])
time([BIN, '--version'], env)
const node = time(['-e', '0'])
const version = time([BIN, '--version'], env)
const command = time([BIN, 'move', '--ip', 'not-an-ip'], env)

const emulator = await startEmulator(['--pending-ms', '500'])
const apiEnv = isolatedEnv(emulator.env)
function requests(...args) {
  const run = spawnSync(process.execPath, [BIN, ...args, '--dry-run', '--json'], {
    env: apiEnv,
    encoding: 'utf8',
  })
  const result = JSON.parse(run.stdout)
  if (!result.ok) throw new Error(`bench move failed: ${run.stdout}`)
  return `${result.requests} requests in ${result.roundTrips} round trips`
}
let cold
let warm
try {
  cold = requests('--project', 't18s', '--ip', '203.0.113.10', '--instance', 'bi-edge-sbg-2')
  warm = requests('--project', 't18s', '--ip', '203.0.113.10', '--instance', 'bi-edge-sbg-2')
} finally {
  emulator.stop()
}

const ratio = (a) => (a / node).toFixed(2)
console.log(`node -e 0                      ${node.toFixed(1)} ms (median of ${RUNS})`)
console.log(
  `ipmove --version               ${version.toFixed(1)} ms = ${ratio(version)}x node   (target <= 1.5x)`,
)
console.log(`ipmove move (to first answer)  ${command.toFixed(1)} ms = ${ratio(command)}x node`)
console.log(`API before the write  cold: ${cold} (target <= 4); warm: ${warm} (target <= 1)`)
