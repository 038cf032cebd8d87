/**
 * Actions on transitions (heartbeat's haresources): argv lists, never a
 * shell, run one after the other, each bounded by its timeout and logged with
 * its exit code. They run beside the IP's move, never in its way: a failing
 * or hanging action is reported and the next one still runs.
 */
import { spawn } from 'node:child_process'
import type { Logger } from '../output.js'
import type { Role, WatchAction } from './config.js'

/** How long a timed-out action gets after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 2000

export interface ActionContext {
  role: Role
  name: string
  ip: string
}

/** Run `actions` in order; resolves with each one's exit code (null: killed or not started). */
export async function runActions(
  actions: readonly WatchAction[],
  context: ActionContext,
  log: Logger,
): Promise<Array<number | null>> {
  const codes: Array<number | null> = []
  for (const action of actions) codes.push(await runAction(action, context, log))
  return codes
}

function runAction(action: WatchAction, context: ActionContext, log: Logger): Promise<number | null> {
  const started = Date.now()
  const what = `action ${action.name} (${context.role})`
  return new Promise((resolve) => {
    let timedOut = false
    let killer: NodeJS.Timeout | undefined
    const child = spawn(action.argv[0]!, action.argv.slice(1), {
      stdio: 'ignore',
      env: { ...process.env, IPMOVE_ROLE: context.role, IPMOVE_NAME: context.name, IPMOVE_IP: context.ip },
    })
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
      killer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS)
    }, action.timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      log.warn(`${what} could not start: ${error.message}`)
      resolve(null)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      clearTimeout(killer)
      const ms = Date.now() - started
      if (timedOut) log.warn(`${what} timed out after ${action.timeoutMs} ms and was killed`)
      else if (code === 0) log.info(`${what} exited 0 in ${ms} ms`)
      else
        log.warn(`${what} failed: ${code === null ? `killed by ${signal}` : `exit ${code}`} after ${ms} ms`)
      resolve(code)
    })
  })
}
