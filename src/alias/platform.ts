/**
 * Which address driver this machine needs. Kept apart from driver.ts, which
 * the drivers import, so that picking one (lazily) makes no import circle.
 * A new OS gets a driver module beside linux.ts and bsd.ts, and a line here.
 */
import { type AddressDriver, localError } from './driver.js'

export type Platform = 'linux' | 'openbsd' | 'freebsd'

export function platformOf(name: NodeJS.Platform | string): Platform {
  if (name === 'linux' || name === 'openbsd' || name === 'freebsd') return name
  throw localError(`ipmove cannot configure addresses on ${name} (only Linux, OpenBSD and FreeBSD)`)
}

/** The driver for this machine; BSD and Linux modules load lazily. */
export async function pickDriver(platform: Platform = platformOf(process.platform)): Promise<AddressDriver> {
  if (platform === 'linux') {
    const { LinuxDriver } = await import('./linux.js')
    return new LinuxDriver()
  }
  const { BsdDriver } = await import('./bsd.js')
  return new BsdDriver(platform)
}
