/** HTTP calls to the JSON REST emulators, as a client would make them. */

export interface JsonAnswer {
  status: number
  headers: Headers
  // biome-ignore lint/suspicious/noExplicitAny: JSON from an emulator, checked field by field in tests
  json: any
}

/** Send `body` (an object as JSON, a string as is) with `headers`; parse the JSON answer. */
export async function jsonCall(
  url: string,
  method: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<JsonAnswer> {
  const all = { ...headers }
  if (body !== undefined && !('Content-Type' in all)) all['Content-Type'] = 'application/json'
  const response = await fetch(url, {
    method,
    headers: all,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : undefined }
}

/** A plain-text GET, as metadata services answer: [status, text]. */
export async function textGet(url: string): Promise<[number, string]> {
  const response = await fetch(url)
  return [response.status, await response.text()]
}
