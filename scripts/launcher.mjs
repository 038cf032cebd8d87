/**
 * bin/run.js and the single file begin with the sh launcher: `#!/bin/sh`, then lines that
 * start with `':' //` (see bin/run.js). Split a file's text into those lines and the rest.
 */
export function splitLauncher(text) {
  const lines = text.split('\n')
  const end = lines.findIndex((line, i) => i > 0 && !line.startsWith("':' //"))
  return { launcher: lines.slice(0, end).join('\n'), body: lines.slice(end).join('\n') }
}
