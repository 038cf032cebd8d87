// Bundle the CLI with esbuild: one shared chunk for oclif and the engine, one
// small file per command (oclif loads only the one it runs), and a chunk per
// provider, loaded lazily. Then write the oclif manifest so that listing and
// help never load commands. Bundling halves start-up against loading oclif's
// hundreds of files one by one (see `npm run bench`).
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'

const root = new URL('..', import.meta.url).pathname

function files(dir) {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(join(root, path)).isDirectory()) return files(path)
    return name.endsWith('.ts') ? [path] : []
  })
}

rmSync(join(root, 'dist'), { recursive: true, force: true })
await build({
  absWorkingDir: root,
  entryPoints: ['src/main.ts', ...files('commands')],
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
  // Bundled CommonJS (oclif) still calls require() for Node built-ins.
  banner: {
    js: "import { createRequire as __ipmoveCreateRequire } from 'node:module'; const require = __ipmoveCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
})

const { Plugin } = await import('@oclif/core')
const plugin = new Plugin({ root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true })
await plugin.load()
writeFileSync(join(root, 'oclif.manifest.json'), `${JSON.stringify(plugin.manifest, null, 2)}\n`)
console.log(`built dist/ and oclif.manifest.json (${Object.keys(plugin.manifest.commands).length} commands)`)
