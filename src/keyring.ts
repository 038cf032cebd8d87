/**
 * The OS keyring, through the optional @napi-rs/keyring module. Entries live
 * under service "ipmove", one account per provider ("ovh"), each holding one
 * JSON string.
 */
export interface KeyringLike {
  /** How messages name this store. */
  readonly description: string
  /** The stored value; undefined when nothing is stored. Rejects when no keyring works here. */
  get(account: string): Promise<string | undefined>
  set(account: string, value: string): Promise<void>
  /** True when something was deleted. */
  delete(account: string): Promise<boolean>
}

export const KEYRING_SERVICE = 'ipmove'

/** A hook must not hang on a keyring waiting for a desktop unlock prompt. */
const READ_TIMEOUT_MS = 5_000
/** Writes come from a person at a terminal, who may have to unlock the keyring. */
const WRITE_TIMEOUT_MS = 120_000

interface NativeEntry {
  getPassword(signal?: AbortSignal): Promise<string | null>
  setPassword(password: string, signal?: AbortSignal): Promise<void>
  deleteCredential(signal?: AbortSignal): Promise<boolean>
}
type NativeEntryClass = new (service: string, account: string, options?: object) => NativeEntry

/** Why the keyring cannot be used, as one short clause. */
export class KeyringUnavailable extends Error {}

/**
 * On Linux the entry is pinned to the Secret Service (D-Bus): the library's
 * fallback, the kernel keyutils store, forgets everything at reboot and is
 * scoped to a login session, so a secret stored there would silently vanish
 * before the next failover. Headless hosts without a session bus thus have no
 * keyring: use /etc/ovh.conf there.
 */
const ENTRY_OPTIONS = process.platform === 'linux' ? { linux: { store: 'secret-service' } } : undefined

let loaded: Promise<NativeEntryClass> | undefined

function loadNative(): Promise<NativeEntryClass> {
  loaded ??= import('@napi-rs/keyring').then(
    (module) => module.AsyncEntry as unknown as NativeEntryClass,
    () => {
      throw new KeyringUnavailable('the optional module @napi-rs/keyring is not installed')
    },
  )
  return loaded
}

async function withTimeout<T>(
  what: string,
  ms: number,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort()
      reject(new KeyringUnavailable(`${what} took longer than ${ms / 1000} s`))
    }, ms)
    timer.unref()
  })
  try {
    return await Promise.race([run(controller.signal), timeout])
  } catch (error) {
    if (error instanceof KeyringUnavailable) throw error
    // The native message is one line such as "Platform failure: DBus error: …".
    throw new KeyringUnavailable(String((error as Error).message ?? error).split('\n')[0])
  } finally {
    clearTimeout(timer)
  }
}

/** The real OS keyring (Keychain, Windows Credential Manager, Secret Service). */
export function systemKeyring(): KeyringLike {
  const entry = async (account: string) => {
    const Entry = await loadNative()
    try {
      return new Entry(KEYRING_SERVICE, account, ENTRY_OPTIONS)
    } catch (error) {
      throw new KeyringUnavailable(String((error as Error).message).split('\n')[0])
    }
  }
  return {
    description: 'the OS keyring',
    async get(account) {
      const e = await entry(account)
      const value = await withTimeout('reading the keyring', READ_TIMEOUT_MS, (signal) =>
        e.getPassword(signal),
      )
      return value ?? undefined
    },
    async set(account, value) {
      const e = await entry(account)
      await withTimeout('writing the keyring', WRITE_TIMEOUT_MS, (signal) => e.setPassword(value, signal))
    },
    async delete(account) {
      const e = await entry(account)
      return withTimeout('writing the keyring', WRITE_TIMEOUT_MS, (signal) => e.deleteCredential(signal))
    },
  }
}
