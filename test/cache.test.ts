import { chownSync, mkdtempSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { FileCache } from '../src/cache.js'
import { MemoryLogger } from '../src/output.js'
import { describeRoot } from './rig/netns.js'

/** A cache directory holding an entry planted by "another user": the instance id to route the IP to. */
function planted() {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-cache-'))
  const env = { IPMOVE_CACHE_DIR: dir }
  const cache = FileCache.forAccount(env, 'ovh', 'account', new MemoryLogger())
  cache.set('instance:web', 'planted-instance')
  cache.save()
  const [file] = readdirSync(dir) as [string]
  return { dir, env, file: join(dir, file) }
}

describe('the id cache directory', () => {
  it('is not followed when it is a symlink', () => {
    const { dir } = planted()
    const link = `${dir}-link`
    symlinkSync(dir, link)
    const log = new MemoryLogger()
    const cache = FileCache.forAccount({ IPMOVE_CACHE_DIR: link }, 'ovh', 'account', log)
    expect(cache.get('instance:web')).toBeUndefined()
    expect(log.lines).toEqual([
      `warning: id cache not used: ${link} is a symlink, which ipmove does not follow; set IPMOVE_CACHE_DIR to the real directory`,
    ])
  })

  it('does not read a cache file that is a symlink', () => {
    const { dir, file } = planted()
    const elsewhere = join(mkdtempSync(join(tmpdir(), 'ipmove-elsewhere-')), 'ids.json')
    writeFileSync(
      elsewhere,
      JSON.stringify({ 'instance:web': { v: 'planted-instance', e: Date.now() + 60_000 } }),
    )
    renameSync(file, `${file}.old`)
    symlinkSync(elsewhere, file)
    const cache = FileCache.forAccount({ IPMOVE_CACHE_DIR: dir }, 'ovh', 'account', new MemoryLogger())
    expect(cache.get('instance:web')).toBeUndefined()
  })

  it('reads back entries from a directory of ours', () => {
    const { env } = planted()
    const log = new MemoryLogger()
    expect(FileCache.forAccount(env, 'ovh', 'account', log).get('instance:web')).toBe('planted-instance')
    expect(log.lines).toEqual([])
  })

  it('that cannot be created leaves a cache in memory, without a warning', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ipmove-cache-')), 'file')
    writeFileSync(file, '')
    const log = new MemoryLogger()
    const cache = FileCache.forAccount({ IPMOVE_CACHE_DIR: join(file, 'cache') }, 'ovh', 'account', log)
    cache.set('k', 'v')
    cache.save()
    expect(cache.get('k')).toBe('v')
    expect(log.lines).toEqual([])
  })
})

describeRoot('the id cache directory, as root', () => {
  it('is not read when someone else owns it, and a warning names IPMOVE_CACHE_DIR', () => {
    const { dir, env } = planted()
    chownSync(dir, 65534, 65534)
    const log = new MemoryLogger()
    const cache = FileCache.forAccount(env, 'ovh', 'account', log)
    expect(cache.get('instance:web')).toBeUndefined()
    expect(log.lines).toEqual([
      `warning: id cache not used: ${dir} is owned by uid 65534, not by you (uid ${process.geteuid?.()}); set IPMOVE_CACHE_DIR to a directory of yours`,
    ])
  })
})
