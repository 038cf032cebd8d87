import { type Command, CommandHelp, Help, type Interfaces } from '@oclif/core'
import { usageError } from './errors.js'

/**
 * ipmove's help, loaded only when help is asked for (src/main.ts). Descriptions
 * are written one line per paragraph and wrap to the terminal here; an indented
 * line (a table row) keeps its indentation, and its continuation lines hang
 * under its second column.
 */
export class IpmoveHelp extends Help {
  protected override CommandHelpClass = IpmoveCommandHelp

  /** The first line of a help page, above USAGE, which oclif does not wrap. */
  private wrapFirst(page: string): string {
    const [first = '', ...rest] = page.split('\n')
    return [this.wrap(first, 0), ...rest].join('\n')
  }

  override formatRoot(): string {
    return this.wrapFirst(super.formatRoot())
  }

  override formatTopic(topic: Interfaces.Topic): string {
    return this.wrapFirst(super.formatTopic(topic))
  }

  /** Set while showCommandHelp prints the summary atop the page (in lists, oclif wraps summaries itself). */
  private summaryAtTop = false

  override summary(command: Command.Loadable): string | undefined {
    const summary = super.summary(command)
    if (!this.summaryAtTop) return summary
    this.summaryAtTop = false
    return summary && this.wrap(summary, 0)
  }

  /** The manifest leaves out booleans' defaults, and a --[no-]FLAG's default is part of its meaning. */
  override async showCommandHelp(command: Command.Loadable): Promise<void> {
    const loaded = await command.load()
    const flags = Object.fromEntries(
      Object.entries(command.flags).map(([name, flag]) => {
        const fallback = loaded.flags?.[name]?.default
        return flag.type === 'boolean' && flag.allowNo && typeof fallback === 'boolean'
          ? [name, { ...flag, description: `${flag.description ?? ''} [default: ${fallback}]`.trim() }]
          : [name, flag]
      }),
    )
    this.summaryAtTop = true
    await super.showCommandHelp({ ...command, flags })
  }

  override wrap(body: string, spacing = this.indentSpacing): string {
    return keepingIndent(body, spacing, this.opts.maxWidth, (text, at) => super.wrap(text, at))
  }
}

class IpmoveCommandHelp extends CommandHelp {
  override wrap(body: string, spacing = this.indentSpacing): string {
    return keepingIndent(body, spacing, this.opts.maxWidth, (text, at) => super.wrap(text, at))
  }
}

/**
 * Wrap each line of `body` with oclif's `wrap` (which trims indentation), keeping each line's
 * indentation and hanging its continuation lines under the text after a 2-space gap.
 */
function keepingIndent(
  body: string,
  spacing: number,
  maxWidth: number,
  wrap: (text: string, spacing: number) => string,
): string {
  return body
    .split('\n')
    .map((line) => {
      const lead = /^ */.exec(line)![0].length
      // oclif's usage lines start with one space it expects trimmed: rows are indented by 2 or more.
      if (lead < 2) return wrap(line, spacing)
      const column = /^ *\S+(?: \S+)*? {2,}(?=\S)/.exec(line)?.[0].length
      const hang = column !== undefined && column <= maxWidth - spacing - 20 ? column : lead
      const [first = '', ...rest] = wrap(line.slice(lead), spacing + lead).split('\n')
      const continued = rest.length > 0 ? wrap(rest.join(' '), spacing + hang).split('\n') : []
      return [' '.repeat(lead) + first, ...continued.map((part) => ' '.repeat(hang) + part)].join('\n')
    })
    .join('\n')
}

/** The one-line error for a command that does not exist, naming those that do. */
export function unknownCommand(config: Interfaces.Config, name: string) {
  const commands = config.commands
    .filter((c) => !c.hidden)
    .map((c) => c.id.replaceAll(':', ' '))
    .sort()
  return usageError(
    `unknown command ${JSON.stringify(name)} (commands: ${commands.join(', ')}; see ipmove help)`,
  )
}
