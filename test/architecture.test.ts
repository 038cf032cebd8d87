/**
 * The shape the code keeps (see README, Development): no import circles, and
 * everything about one cloud inside providers/, reached through the registry.
 * The import graph comes from esbuild's metafile: what the bundle really sees,
 * static and lazy imports alike.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build, type Metafile } from 'esbuild'
import { beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ENTRIES = ['src/main.ts', 'commands/move.ts', 'commands/status.ts', 'commands/release.ts']

let graph: Map<string, string[]>
let metafile: Metafile

beforeAll(async () => {
  const { readdirSync } = await import('node:fs')
  const commands = readdirSync(`${ROOT}/commands`, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `commands/${f}`)
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [...new Set([...ENTRIES, ...commands])],
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    outdir: 'out',
    splitting: true,
    logLevel: 'silent',
  })
  metafile = result.metafile
  graph = importGraph(metafile)
})

function importGraph(metafile: Metafile): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const [file, input] of Object.entries(metafile.inputs)) {
    graph.set(
      file,
      input.imports.filter((i) => !i.external).map((i) => i.path),
    )
  }
  return graph
}

/** Every import circle, each as the files around it (Tarjan's strongly connected components). */
function circles(graph: Map<string, string[]>): string[][] {
  let index = 0
  const order = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (node: string) => {
    order.set(node, index)
    low.set(node, index++)
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!order.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node)!, low.get(next)!))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, order.get(next)!))
      }
    }
    if (low.get(node) === order.get(node)) {
      const component: string[] = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      if (component.length > 1) found.push(component.sort())
    }
  }
  for (const node of graph.keys()) if (!order.has(node)) visit(node)
  return found
}

describe('architecture', () => {
  it('has no import circle, lazy imports included', () => {
    expect(graph.size).toBeGreaterThan(20)
    expect(circles(graph)).toEqual([])
  })

  it('finds a circle when there is one (the check itself works)', () => {
    const sample = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ])
    expect(circles(sample)).toEqual([['a.ts', 'b.ts', 'c.ts']])
  })

  it('reaches providers only through the registry from outside providers/', () => {
    const offenders = [...graph]
      .filter(([file]) => !file.startsWith('providers/'))
      .flatMap(([file, imports]) =>
        imports
          .filter((i) => i.startsWith('providers/') && i !== 'providers/index.ts')
          .map((i) => `${file} -> ${i}`),
      )
    expect(offenders).toEqual([])
  })

  it('keeps the engine free of the providers: src/core imports nothing from providers/', () => {
    const core = [...graph].filter(([file]) => file.startsWith('src/core/'))
    expect(core.length).toBeGreaterThan(0)
    for (const [file, imports] of core) {
      expect(
        imports.filter((i) => i.startsWith('providers/')),
        file,
      ).toEqual([])
    }
  })

  it('loads the etcd client (gRPC) only behind import(), for an IP that follows source = etcd', () => {
    const inputs = Object.entries(metafile.inputs)
    const importers = inputs.filter(([, input]) => input.imports.some((i) => i.path === 'etcd3'))
    expect(importers.map(([file]) => file)).toEqual(['src/watch/sources/etcd.ts'])
    const reached = inputs.flatMap(([file, input]) =>
      input.imports.filter((i) => i.path === 'src/watch/sources/etcd.ts').map((i) => `${file} ${i.kind}`),
    )
    expect(reached).toEqual(['src/watch/sources/index.ts dynamic-import'])
  })

  it('reads no cloud variables (OVH_*, AWS_*) outside providers/', () => {
    const readers = [...graph.keys()]
      .filter((file) => !file.startsWith('providers/') && file.endsWith('.ts'))
      .filter((file) => /\benv(?:\.|\[['"])(?:OVH|AWS)_/.test(readFileSync(`${ROOT}/${file}`, 'utf8')))
    expect(readers).toEqual([])
  })
})
