import { Args } from '@oclif/core'
import { BaseCommand } from '../src/command.js'

export default class Completion extends BaseCommand {
  static override summary = 'Print a shell completion script (bash or zsh).'
  static override description =
    'The script completes commands, flags, the choices of --provider and --mode, file names and network interfaces. It is made from the same flags the help shows, so it follows the installed version.'
  static override examples = [
    '<%= config.bin %> completion bash > /etc/bash_completion.d/<%= config.bin %>',
    '<%= config.bin %> completion zsh > /usr/local/share/zsh/site-functions/_<%= config.bin %>',
    'source <(<%= config.bin %> completion bash)',
  ]

  static override args = {
    shell: Args.string({ description: 'The shell.', options: ['bash', 'zsh'], required: true }),
  }

  async run(): Promise<void> {
    const { args } = await this.parse(Completion)
    const { bashCompletion, zshCompletion } = await import('../src/completion.js')
    const { bin, commands } = this.config
    const topics = new Map(this.config.topics.map((t) => [t.name, t.description ?? '']))
    process.stdout.write(
      args.shell === 'zsh'
        ? zshCompletion(bin, commands, 'move', topics)
        : bashCompletion(bin, commands, 'move'),
    )
  }
}
