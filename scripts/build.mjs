// Bundle the CLI with esbuild: one shared chunk for oclif and the engine, one
// small file per command (oclif loads only the one it runs), and a chunk per
// provider, loaded lazily. Then write the oclif manifest so that listing and
// help never load commands. Bundling halves start-up against loading oclif's
// hundreds of files one by one (see `npm run bench`).
// Last, dist/ipmove.cjs: the same CLI as one self-contained file for servers
// (`install -m 755 dist/ipmove.cjs /usr/local/bin/ipmove`), which needs only Node.
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { build } from 'esbuild'
import { etcdClient } from './etcd-proto.mjs'
import { splitLauncher } from './launcher.mjs'

const root = new URL('..', import.meta.url).pathname

/**
 * The AWS SDK ships ES modules beside CommonJS, but its packages without an
 * `exports` map name them only in `module`, which esbuild's node platform ranks
 * below `main`: CommonJS cannot be tree-shaken, so take the ES build.
 */
const awsSdkEsm = {
  name: 'aws-sdk-esm',
  setup(b) {
    b.onResolve({ filter: /^@(?:aws-sdk|smithy)\/[^/]+$/ }, (args) => {
      const require = createRequire(args.importer || join(root, 'package.json'))
      let manifest
      try {
        manifest = require.resolve(`${args.path}/package.json`)
      } catch {
        return undefined
      }
      const pkg = JSON.parse(readFileSync(manifest, 'utf8'))
      if (pkg.exports || !pkg.module) return undefined
      return { path: join(dirname(manifest), pkg.module) }
    })
  },
}

/**
 * client-ec2 describes all ~750 operations in one generated file whose objects
 * use computed keys (`{ [_xN]: _pIA }`, `_xN` being a string constant). esbuild
 * must assume a computed key may run code, so it keeps every declaration: 1 MB
 * for the 8 commands ipmove sends, ~100 ms of parsing at each hook's start-up. Writing
 * the constants' values as plain keys lets tree shaking drop the rest (~100 kB).
 */
const ec2SchemaKeys = {
  name: 'ec2-schema-keys',
  setup(b) {
    b.onLoad({ filter: /client-ec2[\\/]dist-es[\\/]schemas[\\/]schemas_\d+\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8')
      const constants = new Map()
      for (const [, name, value] of text.matchAll(/^const (_\w+) = ("[^"\\\n]*");$/gm))
        constants.set(name, value)
      let replaced = 0
      const contents = text.replace(/\[(_\w+)\]:/g, (key, name) => {
        const value = constants.get(name)
        if (value === undefined) return key
        replaced++
        return `${value}:`
      })
      const warnings = replaced
        ? []
        : [{ text: 'no computed schema keys found: the SDK changed its layout, the AWS chunk will be large' }]
      return { contents, loader: 'js', warnings }
    })
  },
}

function files(dir) {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(join(root, path)).isDirectory()) return files(path)
    return name.endsWith('.ts') ? [path] : []
  })
}

// Bundled CommonJS (oclif) calls require(), which ES modules lack: each file of dist/ makes one.
const requireBanner =
  "import { createRequire as __ipmoveCreateRequire } from 'node:module'; const require = __ipmoveCreateRequire(import.meta.url);"

rmSync(join(root, 'dist'), { recursive: true, force: true })
await build({
  absWorkingDir: root,
  entryPoints: ['src/main.ts', 'src/man.ts', 'scripts/single-entry.ts', ...files('commands')],
  outdir: 'dist',
  outbase: '.',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // The keyring is native and optional (import() only by `credentials`); oclif only loads
  // TypeScript tooling when run from sources, never from this bundle.
  external: ['@napi-rs/keyring', 'typescript', 'ts-node', 'tsx'],
  chunkNames: 'chunks/[name]-[hash]',
  plugins: [awsSdkEsm, ec2SchemaKeys, etcdClient],
  banner: { js: requireBanner },
  logLevel: 'warning',
})

const { Plugin } = await import('@oclif/core')
const plugin = new Plugin({ root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true })
await plugin.load()
writeFileSync(join(root, 'oclif.manifest.json'), `${JSON.stringify(plugin.manifest, null, 2)}\n`)

/** dist/ipmove.1, from the manifest's help texts and the commands' boolean defaults (which it leaves out). */
async function writeManPage(manifest) {
  const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const { manPage } = await import(join(root, 'dist', 'src', 'man.js'))
  const booleanDefaults = new Map()
  for (const [id, command] of Object.entries(manifest.commands)) {
    const { default: loaded } = await import(join(root, ...command.relativePath))
    const defaults = Object.entries(loaded.flags ?? {}).filter(
      ([, f]) => f.type === 'boolean' && typeof f.default === 'boolean',
    )
    booleanDefaults.set(id, new Map(defaults.map(([name, f]) => [name, f.default])))
  }
  const topics = new Map(Object.entries(pjson.oclif.topics ?? {}).map(([name, t]) => [name, t.description]))
  const page = manPage({
    bin: pjson.oclif.bin,
    version: pjson.version,
    description: pjson.description,
    commands: Object.values(manifest.commands),
    topics,
    booleanDefaults,
  })
  writeFileSync(join(root, 'dist', 'ipmove.1'), page)
}
await writeManPage(plugin.manifest)

/**
 * The single file's entry: package.json's oclif part and the manifest as data, and each command's
 * file of dist/ behind import(), which esbuild keeps lazy inside one file (a module is evaluated on
 * its first import). Bundling dist/ rather than the sources keeps its tree shaking: esbuild does not
 * tree-shake modules it must wrap to evaluate lazily, which would put all of the EC2 client in.
 */
function singleFileEntry(manifest) {
  const { name, version, oclif } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  for (const key of ['hooks', 'helpClass', 'plugins']) {
    if (oclif[key])
      throw new Error(`package.json oclif.${key}: oclif loads it from disk, beside the single file`)
  }
  const commands = Object.entries(manifest.commands).map(
    ([id, command]) =>
      `${JSON.stringify(id)}: () => import(${JSON.stringify(`./${command.relativePath.join('/')}`)}),`,
  )
  const json = (value) => `JSON.parse(${JSON.stringify(JSON.stringify(value))})`
  return `import { main } from './dist/scripts/single-entry.js'
main({
  pjson: ${json({ name, version, oclif })},
  manifest: ${json(manifest)},
  commands: {\n${commands.join('\n')}\n},
}, process.argv.slice(2))
`
}

/** In one CommonJS file, dist/'s own require() is Node's: drop the banner that made one. */
const withoutRequireBanner = {
  name: 'without-require-banner',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, async (args) => {
      if (!args.path.startsWith(join(root, 'dist', '/'))) return undefined
      const text = await readFile(args.path, 'utf8')
      if (!text.startsWith(requireBanner))
        throw new Error(`${args.path} does not start with the require banner`)
      return { contents: text.slice(requireBanner.length), loader: 'js' }
    })
  },
}

// CommonJS, because Node takes a file without extension outside any package (/usr/local/bin/ipmove)
// for CommonJS, and a single executable application's script must be CommonJS.
await build({
  absWorkingDir: root,
  stdin: { contents: singleFileEntry(plugin.manifest), resolveDir: root, sourcefile: 'single-file-entry.js' },
  outfile: 'dist/ipmove.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['@napi-rs/keyring', 'typescript', 'ts-node', 'tsx'],
  plugins: [withoutRequireBanner],
  // bin/run.js's sh launcher, which finds node.
  banner: { js: splitLauncher(readFileSync(join(root, 'bin', 'run.js'), 'utf8')).launcher },
  logLevel: 'warning',
})
chmodSync(join(root, 'dist', 'ipmove.cjs'), 0o755)
console.log(
  `built dist/, dist/ipmove.cjs, dist/ipmove.1 and oclif.manifest.json (${Object.keys(plugin.manifest.commands).length} commands)`,
)
