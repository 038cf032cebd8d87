/**
 * A real three-member etcd cluster (Debian's etcd-server, 3.4) for the
 * leadership tests: one member per namespace of the rig (its extra nodes),
 * clients over TLS with client certificates, peers in plain HTTP on the LAN.
 * Raft's timings are tightened (heartbeat 50 ms, election 500 ms) so that the
 * cluster forms in well under a second and a lost member is noticed fast;
 * etcd's shortest lease is then 1.5 × 500 ms, below the tests' 1 s floor.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateTls } from '../../emulator/tls.js'
import { type Rig, type RigNode, waitFor } from './netns.js'

/** What the suites need on PATH besides the rig's own tools (see .ci/run's apt line). */
export const ETCD_TOOLS = ['etcd', 'etcdctl']

export const CLIENT_PORT = 2379
const PEER_PORT = 2380

/** The files a client needs: the CA that signed the members, and its own certificate. */
export interface ClientTls {
  ca: string
  cert: string
  key: string
}

export interface EtcdCluster {
  members: RigNode[]
  /** https://ADDRESS:2379 of every member. */
  endpoints: string[]
  tls: ClientTls
  /** Kill a member (SIGKILL: as a crash or a pulled plug would stop it). */
  kill(member: RigNode): Promise<void>
  /** Start a killed member again, on its own data. */
  start(member: RigNode): Promise<void>
  /** `etcdctl ARGS` from `from` (the observer by default), with the client certificate. */
  ctl(args: readonly string[], from?: RigNode): Promise<{ code: number; stdout: string; stderr: string }>
  /** Kill every member still running. */
  stop(): Promise<void>
}

/** Start one member per node of `members` (their namespaces exist), data and certificates under `dir`. */
export async function startEtcd(rig: Rig, members: RigNode[], dir: string): Promise<EtcdCluster> {
  const material = await generateTls(
    members.map((m) => m.ipv4),
    true,
  )
  const tlsDir = join(dir, 'etcd-tls')
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 })
  const file = (name: string, text: string) => {
    const path = join(tlsDir, name)
    writeFileSync(path, text, { mode: 0o600 })
    return path
  }
  const tls: ClientTls = {
    ca: file('ca.pem', material.caCert),
    cert: file('client.pem', material.client!.cert),
    key: file('client-key.pem', material.client!.key),
  }
  const serverCert = file('server.pem', material.cert)
  const serverKey = file('server-key.pem', material.key)
  const cluster = members.map((m) => `${m.name}=http://${m.ipv4}:${PEER_PORT}`).join(',')
  const children = new Map<string, { child: ChildProcess; exited: Promise<void>; log: () => string }>()

  const launch = (member: RigNode) => {
    const client = `https://${member.ipv4}:${CLIENT_PORT}`
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        member.ns,
        'etcd',
        '--name',
        member.name,
        '--data-dir',
        join(dir, `etcd-${member.name}`),
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        `http://${member.ipv4}:${PEER_PORT}`,
        '--initial-advertise-peer-urls',
        `http://${member.ipv4}:${PEER_PORT}`,
        '--initial-cluster',
        cluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        rig.tag,
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--cert-file',
        serverCert,
        '--key-file',
        serverKey,
        '--client-cert-auth',
        '--trusted-ca-file',
        tls.ca,
        '--logger',
        'zap',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let log = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-10_000)
    })
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
    children.set(member.name, { child, exited, log: () => log })
  }

  const ctl: EtcdCluster['ctl'] = (args, from = rig.obs) =>
    rig.run(from, [
      'etcdctl',
      `--endpoints=${members.map((m) => `https://${m.ipv4}:${CLIENT_PORT}`).join(',')}`,
      `--cacert=${tls.ca}`,
      `--cert=${tls.cert}`,
      `--key=${tls.key}`,
      '--dial-timeout=1s',
      '--command-timeout=2s',
      ...args,
    ])

  const kill = async (member: RigNode) => {
    const running = children.get(member.name)
    if (!running) return
    children.delete(member.name)
    running.child.kill('SIGKILL')
    await running.exited
  }
  const stop = async () => {
    for (const member of members) await kill(member)
  }

  for (const member of members) launch(member)
  try {
    await waitFor(
      'the etcd cluster to elect a leader and answer over TLS',
      async () => ((await ctl(['endpoint', 'health'])).code === 0 ? true : undefined),
      15_000,
      100,
    )
  } catch (error) {
    const logs = [...children.entries()].map(([name, c]) => `${name}: ${c.log().slice(-1000)}`)
    await stop()
    throw new Error(`${(error as Error).message}\n${logs.join('\n')}`)
  }

  return {
    members,
    endpoints: members.map((m) => `https://${m.ipv4}:${CLIENT_PORT}`),
    tls,
    kill,
    start: async (member) => {
      launch(member)
      await waitFor(
        `etcd member ${member.name} to answer again`,
        async () =>
          (await ctl(['endpoint', 'health', `--endpoints=https://${member.ipv4}:${CLIENT_PORT}`])).code === 0
            ? true
            : undefined,
        15_000,
        100,
      )
    },
    ctl,
    stop,
  }
}
