import { Args, Flags } from '@oclif/core'
import { CONTROL_ACTIONS, type ControlAction, callControl } from '../../emulator/control-client.js'
import { BaseCommand } from '../../src/command.js'
import { usageError } from '../../src/errors.js'
import { shown } from '../../src/validate.js'

export default class EmulateControl extends BaseCommand {
  static override summary =
    'Change or read a running emulator: faults, pending delay, reset, state, request log.'
  static override description =
    `Calls the control API every emulator serves under /_emulator/ on its own port, so a CI job can inject a fault or reset the emulator between steps without restarting it. The emulator is IPMOVE_EMULATOR_URL (from its env.sh) unless --url says otherwise; an HTTPS emulator's CA is trusted through NODE_EXTRA_CA_CERTS (also in its env.sh) or --ca. Prints the emulator's JSON answer.
  state              the state (credentials left out), its faults, pending delay and request count
  requests           the request log, oldest first
  clear-requests     empty the request log
  faults             the faults with the requests each may still take
  fault SPEC         add a fault, in --fault's syntax (see ipmove emulate ovh --help)
  clear-faults       drop every fault
  pending-ms MS      how long changes started from now on stay pending
  reset              back to the start: the fixture's state, the --fault list, --pending-ms, no requests`
  static override examples = [
    '<%= config.bin %> emulate control fault "path=/ip/*/move,method=POST,status=503,times=2"',
    '<%= config.bin %> emulate control pending-ms 10000',
    '<%= config.bin %> emulate control reset --url https://emulator:8443 --ca /shared/ca.pem',
  ]

  static override args = {
    action: Args.string({ description: 'What to do (the actions are listed below).', required: true }),
    value: Args.string({ description: 'The fault SPEC or the MS of actions that take one.' }),
  }

  static override flags = {
    url: Flags.string({
      description: 'The emulator, e.g. https://127.0.0.1:8443 (any path is ignored).',
      env: 'IPMOVE_EMULATOR_URL',
    }),
    ca: Flags.string({ description: 'CA file to trust for an HTTPS emulator (its DIR/ca.pem).' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(EmulateControl)
    if (!Object.hasOwn(CONTROL_ACTIONS, args.action)) {
      throw usageError(
        `unknown action ${shown(args.action)} (known: ${Object.keys(CONTROL_ACTIONS).join(', ')})`,
      )
    }
    if (flags.url === undefined) {
      throw usageError('no emulator: give --url, or source the env.sh of the emulator (IPMOVE_EMULATOR_URL)')
    }
    const answer = await callControl(flags.url, args.action as ControlAction, args.value, flags.ca)
    if (flags.json) this.output.result({ ok: true, ...answer })
    else for (const line of JSON.stringify(answer, null, 2).split('\n')) this.output.info(line)
  }
}
