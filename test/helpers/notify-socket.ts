/**
 * A stand-in for systemd's notify socket: a real AF_UNIX datagram socket,
 * bound by python3 (Node has none), that prints each message it receives as
 * one JSON line with the sender's pid (SCM_CREDENTIALS) and its own
 * CLOCK_MONOTONIC, and closes any descriptor passed along (systemd-notify's
 * BARRIER=1 waits for that, as it waits for systemd).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const RECEIVER = `
import array, json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"ready": True}), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(64) + socket.CMSG_SPACE(12))
    pid, fds = None, []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(payload[0:4], sys.byteorder)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[: len(payload) - len(payload) % a.itemsize])
            fds = list(a)
    for fd in fds:
        os.close(fd)
    fields = dict(line.split("=", 1) for line in data.decode().split("\\n") if "=" in line)
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    print(json.dumps({"pid": pid, "fds": len(fds), "fields": fields, "monoUsec": mono}), flush=True)
`

export interface NotifyMessage {
  pid: number | null
  fds: number
  fields: Record<string, string>
  /** The receiver's CLOCK_MONOTONIC at reception, in microseconds. */
  monoUsec: number
}

export interface NotifySocket {
  path: string
  /** Every message so far, BARRIER=1 included. */
  messages: NotifyMessage[]
  /** The messages other than barriers. */
  notifications(): NotifyMessage[]
  close(): void
}

/** A receiver bound to `path` (its directory must exist), or to a new temporary directory's `notify`. */
export async function notifySocket(at?: string): Promise<NotifySocket> {
  const dir = at ? undefined : mkdtempSync(join(tmpdir(), 'ipmove-notify-'))
  const path = at ?? join(dir!, 'notify')
  const child: ChildProcess = spawn('python3', ['-c', RECEIVER, path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const messages: NotifyMessage[] = []
  const lines = createInterface({ input: child.stdout! })
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`notify receiver exited (${code}) before it was ready`)))
    lines.on('line', (line) => {
      const parsed = JSON.parse(line)
      if (parsed.ready) resolve()
      else messages.push(parsed)
    })
  })
  return {
    path,
    messages,
    notifications: () => messages.filter((m) => m.fields.BARRIER !== '1'),
    close() {
      child.kill()
      rmSync(dir ?? path, { recursive: true, force: true })
    },
  }
}
