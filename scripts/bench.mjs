// `npm run bench`: the figures the issues set targets for, as ratios.
//  - start-up: `ipmove --version`, and a real command up to its first decision
//    (`ipmove move` refusing a bad IP, which loads oclif and the command), both
//    against `node -e 0` on the same machine in the same run;
//  - API round trips before the write, cold (empty id cache) and warm, against
//    the OVH emulator;
//  - the AWS path against the OVH path: the same command shape up to the API's
//    first answer (a local server refusing the credentials at once, so each run
//    is start-up, provider load, one round of requests and exit 3).
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:http'
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
  await emulator.stop()
}

/** Refuses every request as the API would refuse bad credentials: OVH's, Hetzner's and DigitalOcean's JSON, EC2's XML. */
const refusing = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    if (req.url?.startsWith('/instance/') || req.url?.startsWith('/failover/') || req.url === '/server') {
      // Scaleway's and Robot's refusals (their bodies differ; the status is what matters here).
      res.writeHead(401, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ type: 'denied_authentication', message: 'authentication is denied' }))
    } else if (req.url?.startsWith('/v2/')) {
      res.writeHead(401, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ id: 'unauthorized', message: 'Unable to authenticate you.' }))
    } else if (req.url?.startsWith('/v1/')) {
      res.writeHead(401, { 'Content-Type': 'application/json' })
      res.end(
        JSON.stringify({ error: { code: 'unauthorized', message: 'unable to authenticate', details: {} } }),
      )
    } else if (req.url?.startsWith('/1.0/')) {
      res.writeHead(403, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ message: 'Invalid application key', errorCode: 'INVALID_KEY' }))
    } else {
      res.writeHead(401, { 'Content-Type': 'text/xml' })
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>bench</RequestID></Response>',
      )
    }
  })
})
await new Promise((resolve) => refusing.listen(0, '127.0.0.1', resolve))
const origin = `http://127.0.0.1:${refusing.address().port}`

/** Like time(), without blocking the event loop: the refusing server answers from this process. */
async function timeAsync(argv, env, expectCode) {
  const samples = []
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint()
    const code = await new Promise((resolve) => {
      spawn(process.execPath, argv, { env, stdio: 'ignore' }).on('close', resolve)
    })
    samples.push(Number(process.hrtime.bigint() - started) / 1e6)
    if (code !== expectCode)
      throw new Error(`bench: ${argv.slice(1).join(' ')} exited ${code}, not ${expectCode}`)
  }
  return median(samples)
}

const ovhArgs = [
  BIN,
  '--provider',
  'ovh',
  '--project',
  '0123456789abcdef0123456789abcdef',
  '--ip',
  '203.0.113.5',
  '--instance',
  'i-0',
  '--dry-run',
]
const awsArgs = [
  BIN,
  '--provider',
  'aws',
  '--mode',
  'eip',
  '--ip',
  '203.0.113.5',
  '--instance',
  'i-0123456789abcdef0',
  '--dry-run',
]
const hetznerArgs = [BIN, '--provider', 'hetzner', '--ip', '203.0.113.5', '--instance', 'web-2', '--dry-run']
const hetznerEnv = isolatedEnv({ HCLOUD_ENDPOINT: `${origin}/v1`, HCLOUD_TOKEN: 'bench-token' })
const doArgs = [BIN, '--provider', 'digitalocean', '--ip', '203.0.113.5', '--instance', 'web-2', '--dry-run']
const doEnv = isolatedEnv({ DIGITALOCEAN_API_URL: origin, DIGITALOCEAN_ACCESS_TOKEN: 'bench-token' })
const scwArgs = [BIN, '--provider', 'scaleway', '--ip', '203.0.113.5', '--instance', 'web-2', '--dry-run']
const scwEnv = isolatedEnv({
  SCW_API_URL: origin,
  SCW_SECRET_KEY: '11111111-2222-4333-8444-555555555555',
  SCW_DEFAULT_ZONE: 'fr-par-1',
})
const robotArgs = [
  BIN,
  '--provider',
  'hetzner-robot',
  '--ip',
  '203.0.113.5',
  '--instance',
  'db-2',
  '--dry-run',
]
const robotEnv = isolatedEnv({ HROBOT_URL: origin, HROBOT_USER: 'bench', HROBOT_PASSWORD: 'bench' })
const ovhEnv = isolatedEnv({
  OVH_ENDPOINT: `${origin}/1.0`,
  OVH_APPLICATION_KEY: 'bench-ak',
  OVH_APPLICATION_SECRET: 'bench-as',
  OVH_CONSUMER_KEY: 'bench-ck',
})
const awsEnv = isolatedEnv({
  AWS_ENDPOINT_URL_EC2: origin,
  AWS_ACCESS_KEY_ID: 'AKIABENCH0000000001',
  AWS_SECRET_ACCESS_KEY: 'bench-secret',
  AWS_REGION: 'eu-west-3',
})
let ovhPath
let awsPath
let hetznerPath
let doPath
let scwPath
let robotPath
try {
  await timeAsync(awsArgs, awsEnv, 3) // warm the file cache for the AWS chunks too
  await timeAsync(hetznerArgs, hetznerEnv, 3)
  ovhPath = await timeAsync(ovhArgs, ovhEnv, 3)
  awsPath = await timeAsync(awsArgs, awsEnv, 3)
  hetznerPath = await timeAsync(hetznerArgs, hetznerEnv, 3)
  doPath = await timeAsync(doArgs, doEnv, 3)
  scwPath = await timeAsync(scwArgs, scwEnv, 3)
  robotPath = await timeAsync(robotArgs, robotEnv, 3)
} finally {
  refusing.close()
}

const ratio = (a) => (a / node).toFixed(2)
console.log(`node -e 0                      ${node.toFixed(1)} ms (median of ${RUNS})`)
console.log(
  `ipmove --version               ${version.toFixed(1)} ms = ${ratio(version)}x node   (target <= 1.5x)`,
)
console.log(`ipmove move (to first answer)  ${command.toFixed(1)} ms = ${ratio(command)}x node`)
console.log(`API before the write  cold: ${cold} (target <= 4); warm: ${warm} (target <= 1)`)
console.log(`OVH path (to the API's answer)  ${ovhPath.toFixed(1)} ms = ${ratio(ovhPath)}x node`)
console.log(
  `AWS path (to the API's answer)  ${awsPath.toFixed(1)} ms = ${ratio(awsPath)}x node, ${(awsPath - ovhPath).toFixed(1)} ms more than OVH (target <= 100 ms)`,
)

console.log(
  `Hetzner path (to the API's answer)  ${hetznerPath.toFixed(1)} ms = ${ratio(hetznerPath)}x node, ${(hetznerPath - ovhPath).toFixed(1)} ms more than OVH (target <= 30 ms)`,
)

console.log(
  `DigitalOcean path (to the API's answer)  ${doPath.toFixed(1)} ms = ${ratio(doPath)}x node, ${(doPath - ovhPath).toFixed(1)} ms more than OVH (target <= 30 ms)`,
)

for (const [name, path] of [
  ['Scaleway', scwPath],
  ['Hetzner Robot', robotPath],
]) {
  console.log(
    `${name} path (to the API's answer)  ${path.toFixed(1)} ms = ${ratio(path)}x node, ${(path - ovhPath).toFixed(1)} ms more than OVH (target <= 30 ms)`,
  )
}

// The LAN part (needs root; skips with a message otherwise).
await (await import('./bench-local.mjs')).benchLocal()
// `ipmove watch` failovers on the same kind of rig (needs root too).
await (await import('./bench-watch.mjs')).benchWatch()
