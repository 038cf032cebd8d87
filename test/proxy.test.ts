/**
 * HTTPS_PROXY and NO_PROXY, through a real CONNECT proxy on loopback, for each
 * provider with a cloud API: OVH against its emulator (HTTPS), AWS through the SDK
 * (the proxy records where the SDK asked to go, then refuses the tunnel).
 */
import { createServer, type Server } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OVH_ADDRESSES } from '../emulator/ovh/fixture.js'
import { type RunningOvhEmulator, startOvhEmulator } from '../emulator/ovh/server.js'
import { PROVIDERS } from '../providers/index.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'
import { ACCESS_KEY, SECRET_KEY } from './helpers/ec2-nock.js'

/** Hosts the proxy refuses to tunnel to (it still records the request). */
const REFUSED = new Set(['ec2.eu-west-3.test.invalid:443'])

let emulator: RunningOvhEmulator
let proxy: Server
let proxyUrl: string
/** Every CONNECT target the proxy got, with its Proxy-Authorization header. */
const tunnels: { target: string; auth?: string }[] = []

beforeAll(async () => {
  requireBuild()
  emulator = await startOvhEmulator({ pendingMs: 200 })
  proxy = createServer((_req, res) => res.writeHead(405).end())
  proxy.on('connect', (req, client, head) => {
    const target = req.url ?? ''
    tunnels.push({ target, auth: req.headers['proxy-authorization'] })
    if (REFUSED.has(target)) {
      client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n')
      return
    }
    const [host, port] = [
      target.slice(0, target.lastIndexOf(':')),
      Number(target.slice(target.lastIndexOf(':') + 1)),
    ]
    const upstream = connect(port, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const address = proxy.address()
  proxyUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
})

afterAll(async () => {
  proxy?.closeAllConnections()
  await new Promise((resolve) => proxy?.close(resolve))
  await emulator?.close()
})

describe('HTTPS_PROXY and NO_PROXY', () => {
  it('covers every provider with a cloud API (this file tests each)', () => {
    expect(PROVIDERS.map((p) => p.name).filter((n) => n !== 'local')).toEqual([
      'ovh',
      'aws',
      ...Object.keys(TOKEN_APIS),
    ])
  })

  it('OVH: every API request goes through the proxy’s tunnel; NO_PROXY skips it', async () => {
    const apiHost = new URL(emulator.url).host
    tunnels.length = 0
    const status = ['status', '--project', 't18s', '--ip', OVH_ADDRESSES.cloudV4, '--json']
    const through = await ipmove(status, isolatedEnv({ ...emulator.env, https_proxy: proxyUrl }))
    expect(through.stderr).toBe('')
    expect(json(through)).toMatchObject({ ok: true, holder: { name: 'bi-edge-sbg-1' } })
    expect(tunnels.map((t) => t.target)).toContain(apiHost)
    expect(tunnels.every((t) => t.target === apiHost)).toBe(true)

    // The proxy's password reaches the proxy only, never a printed line.
    tunnels.length = 0
    const withAuth = proxyUrl.replace('http://', 'http://ops:pr0xy-s3cret@')
    const debug = await ipmove(
      [...status, '--debug'],
      isolatedEnv({ ...emulator.env, HTTPS_PROXY: withAuth }),
    )
    expect(debug.code).toBe(0)
    expect(tunnels[0]?.auth).toBe(`Basic ${Buffer.from('ops:pr0xy-s3cret').toString('base64')}`)
    expect(debug.stdout + debug.stderr).not.toContain('pr0xy-s3cret')

    tunnels.length = 0
    const direct = await ipmove(
      status,
      isolatedEnv({ ...emulator.env, HTTPS_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' }),
    )
    expect(json(direct)).toMatchObject({ ok: true })
    expect(tunnels).toEqual([])
  })

  it('AWS: the SDK asks the proxy for the EC2 endpoint; NO_PROXY skips it', async () => {
    const aws = (extra: Record<string, string>) =>
      isolatedEnv({
        AWS_ACCESS_KEY_ID: ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: SECRET_KEY,
        AWS_REGION: 'eu-west-3',
        AWS_EC2_METADATA_DISABLED: 'true',
        ...extra,
      })
    const args = [
      'status',
      '--provider',
      'aws',
      '--ip',
      '203.0.113.5',
      '--endpoint',
      'https://ec2.eu-west-3.test.invalid',
      '--timeout',
      '3',
      '--json',
    ]
    tunnels.length = 0
    const through = await ipmove(args, aws({ HTTPS_PROXY: proxyUrl }))
    // The proxy refused the tunnel: unreachable (8), or out of time retrying (5), after asking the proxy.
    expect([5, 8]).toContain((json(through).error as { exitCode: number }).exitCode)
    expect(tunnels.map((t) => t.target)).toContain('ec2.eu-west-3.test.invalid:443')

    tunnels.length = 0
    const direct = await ipmove(args, aws({ HTTPS_PROXY: proxyUrl, NO_PROXY: '.test.invalid' }))
    // Straight to a name that does not resolve: unreachable (8), or out of time retrying (5).
    expect([5, 8]).toContain((json(direct).error as { exitCode: number }).exitCode)
    expect(tunnels).toEqual([])
  })

  it.each(Object.entries(TOKEN_APIS))(
    '%s: its API requests go through the proxy; NO_PROXY skips it',
    async (provider, env) => {
      const host = `${provider}.test.invalid`
      const args = ['status', '--provider', provider, '--ip', '203.0.113.10', '--timeout', '3', '--json']
      const run = (extra: Record<string, string>) =>
        ipmove(args, isolatedEnv({ ...env(`https://${host}`), ...extra }))
      tunnels.length = 0
      const through = await run({ HTTPS_PROXY: proxyUrl })
      // The proxy refused the tunnel: unreachable (8), or out of time retrying (5), after asking the proxy.
      expect([5, 8]).toContain((json(through).error as { exitCode: number }).exitCode)
      expect(tunnels.map((t) => t.target)).toContain(`${host}:443`)

      tunnels.length = 0
      const direct = await run({ HTTPS_PROXY: proxyUrl, NO_PROXY: '.test.invalid' })
      expect([5, 8]).toContain((json(direct).error as { exitCode: number }).exitCode)
      expect(tunnels).toEqual([])
    },
  )
})

/** The plain HTTPS token APIs, each with the environment that points it at `url`. */
const TOKEN_APIS: Record<string, (url: string) => Record<string, string>> = {
  hetzner: (url) => ({ HCLOUD_ENDPOINT: url, HCLOUD_TOKEN: 'test-token' }),
  'hetzner-robot': (url) => ({ HROBOT_URL: url, HROBOT_USER: '#ws+test', HROBOT_PASSWORD: 'test-password' }),
  digitalocean: (url) => ({ DIGITALOCEAN_API_URL: url, DIGITALOCEAN_ACCESS_TOKEN: 'test-token' }),
  scaleway: (url) => ({
    SCW_API_URL: url,
    SCW_SECRET_KEY: '11111111-1111-4111-8111-111111111111',
    SCW_DEFAULT_ZONE: 'fr-par-1',
    SCW_DEFAULT_PROJECT_ID: '22222222-2222-4222-8222-222222222222',
  }),
}
