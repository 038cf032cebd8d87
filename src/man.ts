/**
 * The man page, ipmove(1), written by the build (scripts/build.mjs) from the
 * same summaries, descriptions, flags and examples as the help.
 */
import type { Command } from '@oclif/core'

export interface ManPageInput {
  bin: string
  version: string
  /** package.json's description. */
  description: string
  commands: readonly Command.Cached[]
  /** Topic descriptions by id. */
  topics: ReadonlyMap<string, string>
  /** Each command's boolean flags' defaults (the manifest leaves them out), by command id then flag. */
  booleanDefaults?: ReadonlyMap<string, ReadonlyMap<string, boolean>>
}

export function manPage({
  bin,
  version,
  description,
  commands,
  topics,
  booleanDefaults,
}: ManPageInput): string {
  const render = (text: string, id = '') =>
    text.replaceAll('<%= config.bin %>', bin).replaceAll('<%= command.id %>', id.replaceAll(':', ' '))
  const out = [
    `.TH ${bin.toUpperCase()} 1 "" "${roff(`${bin} ${version}`)}" "User Commands"`,
    '.SH NAME',
    `${bin} \\- ${roff(description)}`,
    '.SH SYNOPSIS',
    `.B ${bin}`,
    '.RI [ command ]',
    '.RI [ flags ]',
    '.PP',
    `.B ${bin}`,
    '.B help',
    '.RI [ command ]',
    '.SH DESCRIPTION',
    roff(
      `Flags without a command mean \`${bin} move\`. \`${bin} help COMMAND\` and \`${bin} COMMAND -h\` show what follows, one command at a time.`,
    ),
  ]
  const visible = commands.filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id))
  if (topics.size > 0) {
    out.push('.SH TOPICS')
    for (const [name, text] of [...topics].sort()) out.push('.TP', `.B ${roff(name)}`, roff(text))
  }
  out.push('.SH COMMANDS')
  for (const command of visible) {
    const name = `${bin} ${command.id.replaceAll(':', ' ')}`
    const args = Object.keys(command.args ?? {}).map((a) => ` \\fI${a.toUpperCase()}\\fR`)
    out.push(`.SS "${roff(name)}"`, `.B ${roff(name)}${args.join('')}`, '.RI [ flags ]', '.PP')
    if (command.summary) out.push(roff(render(command.summary, command.id)), '.PP')
    if (command.description) out.push(...paragraphs(render(command.description, command.id)))
    const flags = Object.entries(command.flags).filter(([, f]) => !f.hidden)
    for (const [flagName, flag] of flags.sort(([a], [b]) => a.localeCompare(b))) {
      const fallback = booleanDefaults?.get(command.id)?.get(flagName)
      let head =
        flag.type === 'boolean' && flag.allowNo ? `\\-\\-[no\\-]${roff(flagName)}` : `\\-\\-${roff(flagName)}`
      if (flag.type === 'option') head += ` \\fI${flag.options ? roff(flag.options.join('|')) : 'value'}\\fR`
      const notes = [
        flag.type === 'option' && flag.default !== undefined ? `default: ${String(flag.default)}` : undefined,
        fallback !== undefined && flag.type === 'boolean' && flag.allowNo
          ? `default: ${fallback}`
          : undefined,
        flag.type === 'option' && flag.multiple ? 'repeatable' : undefined,
        flag.env ? `env: ${flag.env}` : undefined,
        flag.required ? 'required' : undefined,
      ].filter(Boolean)
      const text = `${flag.description ?? ''}${notes.length > 0 ? ` [${notes.join('; ')}]` : ''}`
      out.push('.TP', `.B ${head}`, roff(render(text, command.id)))
    }
    if ((command.examples ?? []).length > 0) {
      out.push('.PP', 'Examples:', '.RS', '.nf')
      for (const example of command.examples ?? []) {
        const text = typeof example === 'string' ? example : example.command
        out.push(escapeLine(`$ ${render(text, command.id)}`))
      }
      out.push('.fi', '.RE')
    }
  }
  out.push(
    '.SH FILES',
    '.TP',
    '.I /etc/ipmove/ipmove.conf',
    "ipmove's config file for root (see \\-\\-config).",
    '.SH SEE ALSO',
    roff(`The README (exit codes, configuration, providers), and \`${bin} help COMMAND\`.`),
  )
  return `${out.join('\n')}\n`
}

/**
 * Paragraphs become .PP blocks; an indented row with a 2-space gap (a table, as the
 * help shows it) becomes a tagged paragraph; other indented lines stay unfilled.
 */
function paragraphs(text: string): string[] {
  const out: string[] = []
  for (const block of text.split(/\n\s*\n/)) {
    out.push('.PP')
    for (const line of block.split('\n')) {
      const row = /^ {2,}(\S.*?) {2,}(\S.*)$/.exec(line)
      if (row) out.push('.TP', escapeLine(row[1]!), escapeLine(row[2]!))
      else if (/^ {2}/.test(line)) out.push('.nf', escapeLine(line.trimStart()), '.fi')
      else out.push(escapeLine(line))
    }
  }
  return out
}

/** Text for roff: backslashes and dashes escaped, and anything beyond ASCII as a roff Unicode escape. */
function roff(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .replace(
      /[\u0080-\u{10ffff}]/gu,
      (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`,
    )
}

/** A line of text for roff: escaped, and never starting a request (a leading . or '). */
function escapeLine(text: string): string {
  const line = roff(text)
  return /^[.']/.test(line) ? `\\&${line}` : line
}
