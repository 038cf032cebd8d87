/**
 * Reading what a person types or pipes in, for commands such as
 * `credentials set`: bounded standard input, and one line from a terminal
 * with or without echo.
 */
import { usageError } from './errors.js'

/** A terminal ipmove can read from in raw mode. */
export type TerminalInput = NodeJS.ReadableStream & {
  isTTY?: boolean
  setRawMode?: (raw: boolean) => unknown
}

/** All of standard input, refused beyond 64 kB (a credential set is a few lines). */
export async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of input) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
    size += buffer.length
    if (size > 64 * 1024) throw usageError('standard input is too long for a credential set')
    chunks.push(buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** One line from a terminal in raw mode, echoed or not; Ctrl-C or Ctrl-D on an empty line cancels. */
export function readLine(
  input: TerminalInput,
  output: NodeJS.WritableStream,
  question: string,
  echo: boolean,
): Promise<string> {
  output.write(question)
  input.setRawMode!(true)
  input.resume()
  return new Promise((resolvePromise, reject) => {
    let value = ''
    const finish = () => {
      input.off('data', onData)
      input.setRawMode!(false)
      input.pause()
      output.write('\n')
    }
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') {
          finish()
          resolvePromise(value.trim())
          return
        }
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) {
          finish()
          reject(usageError('cancelled'))
          return
        }
        if (ch === '\u007f' || ch === '\b') {
          if (value && echo) output.write('\b \b')
          value = value.slice(0, -1)
        } else if (ch >= ' ') {
          value += ch
          if (echo) output.write(ch)
        }
      }
    }
    input.on('data', onData)
  })
}
