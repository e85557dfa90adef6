/**
 * Progress of a long operation (a replay, an import, a benchmark) for a person at a terminal or a log
 * reader: on a TTY one line redrawn in place (bar, count, rate, ETA), otherwise a plain progress line
 * every few seconds and one at the end, so that CI logs and pipes stay readable.
 */

export interface ProgressStream {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

export interface ProgressOptions {
  /** What is counted ("events", "rows"); default "items". */
  unit?: string
  /** Known total; absent: no bar, no percentage, no ETA. */
  total?: number
  /** Default: process.stderr (stdout stays for results and --json). */
  stream?: ProgressStream
  /** Plain mode: seconds between lines. Default 2000 ms. */
  intervalMs?: number
  /** TTY mode: shortest time between redraws. Default 100 ms. */
  redrawMs?: number
  now?: () => number
}

export interface Progress {
  /** Sets the count done (and the total when it became known or changed). */
  update(done: number, total?: number): void
  /** Ends the display with a final line (the message replaces the counts when given). */
  finish(message?: string): void
}

const fmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?'
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}

export function createProgress(label: string, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr
  const tty = stream.isTTY === true
  const now = options.now ?? Date.now
  const unit = options.unit ?? 'items'
  const interval = tty ? (options.redrawMs ?? 100) : (options.intervalMs ?? 2000)
  const started = now()
  let total = options.total
  let done = 0
  let last = -Infinity
  let finished = false

  const describe = (): string => {
    const elapsed = Math.max(1, now() - started)
    const rate = (done * 1000) / elapsed
    const parts = [
      total !== undefined ? `${fmt.format(done)}/${fmt.format(total)} ${unit}` : `${fmt.format(done)} ${unit}`,
    ]
    if (total !== undefined && total > 0) parts.push(`${Math.min(100, Math.floor((done * 100) / total))}%`)
    parts.push(`${fmt.format(rate)} ${unit}/s`)
    if (total !== undefined && done < total)
      parts.push(`ETA ${rate > 0 ? formatDuration(((total - done) / rate) * 1000) : '?'}`)
    else parts.push(`in ${formatDuration(now() - started)}`)
    return parts.join('  ')
  }

  const bar = (width: number): string => {
    if (total === undefined || total <= 0 || width < 5) return ''
    const filled = Math.min(width, Math.round((done / total) * width))
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] `
  }

  const draw = (force: boolean): void => {
    const t = now()
    if (!force && t - last < interval) return
    last = t
    if (tty) {
      const columns = stream.columns ?? 80
      const text = describe()
      const line = `${label} ${bar(Math.min(30, columns - label.length - text.length - 5))}${text}`
      stream.write(`\r${line.slice(0, columns - 1)}\u001b[K`)
    } else {
      stream.write(`${label}: ${describe()}\n`)
    }
  }

  return {
    update(n, t) {
      if (finished) return
      done = n
      if (t !== undefined) total = t
      draw(false)
    },
    finish(message) {
      if (finished) return
      finished = true
      if (message !== undefined) stream.write(`${tty ? '\r\u001b[K' : ''}${label}: ${message}\n`)
      else {
        draw(true)
        if (tty) stream.write('\n')
      }
    },
  }
}
