/**
 * contrib/pacemaker/ipmove in a real two-node cluster: Debian's corosync 3
 * (knet) and Pacemaker 2.1 run on nodes A and B of the rig, no systemd, each
 * node's daemons in their own mount and UTS namespaces (so each has its own
 * /run, /var/lib/pacemaker, /var/lib/corosync, corosync.conf and host name;
 * their IPC is libqb's abstract sockets, private to the network namespace).
 * The resource starts where its location constraint prefers (A): the OVH
 * emulator routes the IP to A and A carries the address. A's cable is pulled:
 * B's corosync loses A, Pacemaker recovers the resource on B, and the API's
 * holder and the address follow. Run `npm run build` first.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it, onTestFailed } from 'vitest'
import { cable, carries, type Daemon, INSTANCE, IP, startDaemon, usePair } from './rig/engines.js'
import { describeRoot, exec, type Rig, type RigNode, waitFor } from './rig/netns.js'

const AGENT = fileURLToPath(new URL('../contrib/pacemaker/ipmove', import.meta.url))

/** corosync.conf: the rig's LAN addresses, a 1 s token (default 3 s) so that a lost node shows quickly. */
function corosyncConf(rig: Rig): string {
  const node = (n: RigNode, id: number) =>
    `  node {\n    name: ${n.name}\n    nodeid: ${id}\n    ring0_addr: ${n.ipv4}\n  }`
  return [
    'totem {',
    '  version: 2',
    '  cluster_name: ipmove',
    '  transport: knet',
    '  token: 1000',
    '  crypto_cipher: none',
    '  crypto_hash: none',
    '}',
    'nodelist {',
    node(rig.a, 1),
    node(rig.b, 2),
    '}',
    'quorum {',
    '  provider: corosync_votequorum',
    '  two_node: 1',
    '}',
    'logging {',
    '  to_stderr: yes',
    '  to_syslog: no',
    '}',
    '',
  ].join('\n')
}

/**
 * The CIB both nodes start from, as `pcs resource create` with per-node rules
 * would leave it: no fencing devices here (stonith-enabled=false), the DC
 * elected after 2 s instead of 20, the resource preferring A. Each node gets
 * its own `instance` (the emulator has no per-node metadata) and `binary`
 * (its ipmove, with its own lock directory) through rules on #uname, as
 * contrib/pacemaker/README.md says.
 */
function cib(ipmove: (node: RigNode) => string, rig: Rig): string {
  const perNode = (node: RigNode, score: number) => `
        <instance_attributes id="failover_ip-on-${node.name}" score="${score}">
          <rule id="on-${node.name}" score="0">
            <expression id="on-${node.name}-uname" attribute="#uname" operation="eq" value="${node.name}"/>
          </rule>
          <nvpair id="failover_ip-${node.name}-instance" name="instance" value="${INSTANCE[node.name as 'a' | 'b']}"/>
          <nvpair id="failover_ip-${node.name}-binary" name="binary" value="${ipmove(node)}"/>
        </instance_attributes>`
  return `<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <primitive id="failover_ip" class="ocf" provider="ipmove" type="ipmove">
        <instance_attributes id="failover_ip-params" score="10">
          <nvpair id="failover_ip-ip" name="ip" value="${IP}"/>
          <nvpair id="failover_ip-interface" name="interface" value="eth0"/>
          <nvpair id="failover_ip-project" name="project" value="t18s"/>
          <nvpair id="failover_ip-check_api" name="check_api" value="true"/>
        </instance_attributes>${perNode(rig.a, 2)}${perNode(rig.b, 1)}
        <meta_attributes id="failover_ip-meta">
          <nvpair id="failover_ip-stickiness" name="resource-stickiness" value="100"/>
        </meta_attributes>
        <operations>
          <op id="failover_ip-start" name="start" interval="0s" timeout="30s"/>
          <op id="failover_ip-stop" name="stop" interval="0s" timeout="20s"/>
          <op id="failover_ip-monitor" name="monitor" interval="2s" timeout="20s"/>
        </operations>
      </primitive>
    </resources>
    <constraints>
      <rsc_location id="failover_ip-prefers-a" rsc="failover_ip" node="${rig.a.name}" score="50"/>
    </constraints>
  </configuration>
  <status/>
</cib>
`
}

/**
 * A node's cluster stack, run as root in fresh mount and UTS namespaces: its
 * own tmpfs over the directories corosync and Pacemaker keep state in, the
 * agent installed where Pacemaker looks for ocf:ipmove:ipmove, corosync in
 * the background, then pacemakerd in the foreground (the daemon's pid).
 */
const NODE_SCRIPT = `#!/bin/sh
set -eu
name=$1 dir=$2
hostname "$name"
for d in /run /var/lib/pacemaker /var/lib/corosync /var/log/pacemaker /var/log/corosync /usr/lib/ocf/resource.d; do
  mount -t tmpfs -o mode=0755 tmpfs "$d"
done
mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
cp "$dir/cib.xml" /var/lib/pacemaker/cib/cib.xml
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
chmod 750 /var/lib/pacemaker/*
mkdir /usr/lib/ocf/resource.d/ipmove
cp "$dir/agent" /usr/lib/ocf/resource.d/ipmove/ipmove
mount --bind "$dir/corosync.conf" /etc/corosync/corosync.conf
corosync -f >"$dir/corosync-$name.log" 2>&1 &
export PCMK_logfile="$dir/pacemaker-$name.log"
exec pacemakerd
`

/** The last lines of each node's corosync and Pacemaker logs, for a failure. */
function logTails(dir: string): string {
  return ['corosync-a', 'corosync-b', 'pacemaker-a', 'pacemaker-b']
    .map((name) => {
      const file = join(dir, `${name}.log`)
      const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-40) : ['(none)']
      return `--- ${name}.log\n${lines.join('\n')}`
    })
    .join('\n')
}

/** Every process still in A's or B's namespace (all started by this test), ended by pid: TERM, then KILL. */
function leftovers(rig: Rig): Daemon {
  const pids = async () => {
    const lists = await Promise.all([rig.a, rig.b].map((n) => exec(['ip', 'netns', 'pids', n.ns])))
    return lists.flatMap((l) => l.stdout.split('\n').filter(Boolean).map(Number))
  }
  const signal = (pid: number, name: NodeJS.Signals) => {
    try {
      process.kill(pid, name)
    } catch {
      // Gone meanwhile.
    }
  }
  return {
    output: () => '',
    stop: async () => {
      for (const pid of await pids()) signal(pid, 'SIGTERM')
      await waitFor(
        'the cluster daemons to exit',
        async () => ((await pids()).length === 0 ? true : undefined),
        10_000,
        100,
      ).catch(async () => {
        for (const pid of await pids()) signal(pid, 'SIGKILL')
      })
    },
  }
}

describeRoot('the Pacemaker agent in a two-node corosync + Pacemaker cluster, against the OVH emulator', () => {
  const daemons: Daemon[] = []
  const suite = usePair('pcmk', daemons)

  /** Where Pacemaker runs the resource, asked on `node`: one node's name, else undefined (nowhere, or several). */
  async function location(node: RigNode): Promise<string | undefined> {
    const run = await suite.rig.run(node, ['crm_resource', '--locate', '--resource', 'failover_ip'])
    const nodes = [...run.stdout.matchAll(/is running on: (\S+)/g)].map((m) => m[1])
    return nodes.length === 1 ? nodes[0] : undefined
  }

  it('starts the IP on the preferred node; a node that loses its link hands it over, API and address', async () => {
    const { rig, pair, dir } = suite
    onTestFailed(() => console.log(logTails(dir)))
    writeFileSync(join(dir, 'corosync.conf'), corosyncConf(rig))
    writeFileSync(join(dir, 'cib.xml'), cib(pair.ipmove, rig))
    writeFileSync(join(dir, 'agent'), readFileSync(AGENT), { mode: 0o755 })
    writeFileSync(join(dir, 'node.sh'), NODE_SCRIPT, { mode: 0o755 })
    for (const node of [rig.a, rig.b]) {
      daemons.push(startDaemon(node, ['unshare', '--mount', '--uts', join(dir, 'node.sh'), node.name, dir]))
    }
    // Stopped last: corosync, which pacemakerd does not own, and whatever else is left in the namespaces.
    daemons.push(leftovers(rig))
    /**
     * Wait until Pacemaker (asked on B) runs the IP on `node`, the API routes it there and `node` carries
     * the address. Pacemaker shows a resource on a node while its start is still running (pending
     * operations are recorded), so its location alone does not say the address is on.
     */
    const runsOn = (node: RigNode) =>
      waitFor(
        `Pacemaker to run the IP on ${node.name}, routed there by the API, the address there`,
        async () =>
          (await location(rig.b)) === node.name &&
          (await pair.holder()) === INSTANCE[node.name as 'a' | 'b'] &&
          (await carries(rig, node, IP))
            ? true
            : undefined,
        60_000,
        250,
      )

    const started = Date.now()
    await runsOn(rig.a)
    expect(await carries(rig, rig.b, IP)).toBe(false)
    const startMs = Date.now() - started

    const pulled = Date.now()
    await cable(rig, rig.a, 'down')
    await runsOn(rig.b)
    const failoverMs = Date.now() - pulled

    // A comes back: the partitions merge, and the IP must end on one node, the API and the address agreeing.
    const plugged = Date.now()
    await cable(rig, rig.a, 'up')
    const owner = await waitFor(
      'one node to run the IP, routed there by the API, the address there alone',
      async () => {
        const where = await location(rig.b)
        if (where !== 'a' && where !== 'b') return undefined
        const [node, other] = where === 'a' ? [rig.a, rig.b] : [rig.b, rig.a]
        const agreed =
          (await location(rig.a)) === where &&
          (await pair.holder()) === INSTANCE[where] &&
          (await carries(rig, node, IP)) &&
          !(await carries(rig, other, IP))
        return agreed ? where : undefined
      },
      60_000,
      250,
    )
    // And it stays so: no recovery was still under way.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(await location(rig.a)).toBe(owner)
    expect(await location(rig.b)).toBe(owner)
    expect(await pair.holder()).toBe(INSTANCE[owner])
    expect([await carries(rig, rig.a, IP), await carries(rig, rig.b, IP)]).toEqual([
      owner === 'a',
      owner === 'b',
    ])
    console.log(
      `pacemaker: started on A ${startMs} ms after the daemons; failover to B ${failoverMs} ms after A's cable was pulled; after A's return, on ${owner} ${Date.now() - plugged} ms after the cable`,
    )
  }, 150_000)
}, ['corosync', 'pacemakerd', 'crm_resource', 'unshare'])
