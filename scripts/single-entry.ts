/**
 * The entry of the single-file build (dist/ipmove.cjs, see scripts/build.mjs). oclif
 * normally reads package.json, oclif.manifest.json and one module per command
 * from disk; in the single file they are all inside, so the root plugin is made
 * here from the embedded package.json and manifest. A command's module (and the
 * provider it loads) is still evaluated only when that command runs.
 */
import { dirname } from 'node:path'
import type { Command, Interfaces } from '@oclif/core'

export interface Bundle {
  /** package.json's name, version and oclif section. */
  pjson: Interfaces.PJSON
  /** oclif.manifest.json, as the build wrote it for dist/. */
  manifest: Interfaces.Manifest
  /** Each command id's module, imported on demand. */
  commands: Record<string, () => Promise<{ default: Command.Class }>>
}

/** The root plugin oclif would load from disk, made from what the bundle holds. */
function bundledPlugin({ pjson, manifest, commands }: Bundle, root: string): Interfaces.Plugin {
  const findCommand = async (id: string, opts?: { must: boolean }): Promise<Command.Class | undefined> => {
    const load = commands[id]
    if (!load) {
      if (opts?.must) throw new Error(`command ${id} not found`)
      return undefined
    }
    const command = (await load()).default
    command.id = id
    command.plugin = plugin
    return command
  }
  const plugin: Interfaces.Plugin = {
    _base: `${pjson.name}@${pjson.version}`,
    alias: pjson.name,
    name: pjson.name,
    version: pjson.version,
    commandIDs: Object.keys(manifest.commands),
    commands: Object.entries(manifest.commands).map(([id, cached]) => ({
      ...cached,
      load: async () => (await findCommand(id, { must: true }))!,
      pluginAlias: pjson.name,
      pluginType: 'core',
    })),
    commandsDir: undefined,
    findCommand: findCommand as Interfaces.Plugin['findCommand'],
    hasManifest: true,
    hooks: {},
    isRoot: true,
    load: async () => {},
    moduleType: 'commonjs',
    options: { isRoot: true, pjson, root },
    pjson,
    root,
    topics: Object.entries(pjson.oclif.topics ?? {}).map(([name, topic]) => ({ ...topic, name })),
    type: 'core',
    valid: true,
  }
  return plugin
}

export async function main(bundle: Bundle, argv: readonly string[]): Promise<void> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    // Same text as oclif's version flag, without evaluating oclif (as bin/run.js does).
    process.stdout.write(
      `${bundle.pjson.name}/${bundle.pjson.version} ${process.platform}-${process.arch} node-${process.version}\n`,
    )
    return
  }
  const { run } = await import('../src/main.js')
  // Nothing is read from the root: it only names where the CLI lives.
  const root = dirname(process.argv[1] ?? process.execPath)
  const plugin = bundledPlugin(bundle, root)
  await run(argv, { root, pjson: bundle.pjson, plugins: new Map([[plugin.name, plugin]]) })
}
