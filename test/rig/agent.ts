/**
 * Runs ipmove code inside a network namespace for the kernel tests. Node cannot
 * switch namespaces, so the rig bundles this file and starts it with
 * `ip netns exec NS node agent.mjs …`: the code under test then sees that
 * namespace's interfaces exactly as it would on a real host.
 *
 *   agent.mjs cmd <command id> [flags…]   run an oclif command (exit code as the CLI's):
 *                                         alias add|remove|show, release, move, status
 *   agent.mjs svc '<{"fn":…,"options":…}>'  call a service function, print one JSON line
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Command } from '@oclif/core'
import AliasAdd from '../../commands/alias/add.js'
import AliasRemove from '../../commands/alias/remove.js'
import AliasShow from '../../commands/alias/show.js'
import Move from '../../commands/move.js'
import Release from '../../commands/release.js'
import Status from '../../commands/status.js'
import { findAnnounceTool, startRefresh } from '../../src/alias/announce.js'
import { addAlias, removeAlias, showAliases } from '../../src/alias/service.js'
import { IpmoveError } from '../../src/errors.js'
import { exitOf } from '../../src/exit-codes.js'
import { releaseIp } from '../../src/services/release.js'
import { parseIp } from '../../src/validate.js'

const commands: Record<string, Command.Class> = {
  'alias add': AliasAdd,
  'alias remove': AliasRemove,
  'alias show': AliasShow,
  release: Release,
  move: Move,
  status: Status,
}

interface RefreshFor {
  ip: string
  interface: string
  everyMs: number
  count: number
  intervalMs: number
  forMs: number
}

/** Run the periodic refresh for a while, the way a long-lived holder would. */
async function refreshFor(o: RefreshFor): Promise<{ errors: string[] }> {
  const ip = parseIp(o.ip)
  const tool = await findAnnounceTool(ip.version)
  const mac = (await showAliases({ interface: o.interface })).find((e) => e.mac)?.mac
  const errors: string[] = []
  const refresh = startRefresh(tool, { ip, iface: o.interface, mac }, o.everyMs, o, (e) =>
    errors.push(String(e)),
  )
  await sleep(o.forMs)
  refresh.stop()
  return { errors }
}

// biome-ignore lint/suspicious/noExplicitAny: the agent forwards whatever options the test sends
const services: Record<string, (options: any) => Promise<unknown>> = {
  addAlias,
  removeAlias,
  releaseIp,
  showAliases,
  refreshFor,
}

async function runCommandMode(id: string, argv: string[]): Promise<void> {
  const command = commands[id]
  if (!command) throw new Error(`agent: unknown command ${id}`)
  try {
    await command.run(argv, process.env.IPMOVE_AGENT_ROOT)
  } catch (error) {
    // BaseCommand.catch has already reported; oclif signals the exit code by throwing.
    const exit = (error as { oclif?: { exit?: number } }).oclif?.exit
    if (exit === undefined) throw error
    process.exitCode = exit
  }
}

async function runServiceMode(request: string): Promise<void> {
  const { fn, options } = JSON.parse(request) as { fn: string; options: unknown }
  const service = services[fn]
  if (!service) throw new Error(`agent: unknown service ${fn}`)
  const startedAt = Date.now()
  try {
    const result = await service(options)
    process.stdout.write(`${JSON.stringify({ ok: true, result, startedAt, finishedAt: Date.now() })}\n`)
  } catch (error) {
    if (!(error instanceof IpmoveError)) throw error
    const { exitCode } = exitOf(error.kind)
    const failure = { kind: error.kind, exitCode, message: error.message }
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: failure, startedAt, finishedAt: Date.now() })}\n`,
    )
    process.exitCode = exitCode
  }
}

const [mode, first = '', ...rest] = process.argv.slice(2)
if (mode === 'cmd') await runCommandMode(first, rest)
else if (mode === 'svc') await runServiceMode(first)
else throw new Error(`agent: unknown mode ${mode}`)
