/**
 * Thin commands over the management API, for operators at a terminal: readable tables by default,
 * the API's JSON with --json. Errors print the problem+json answer (title, detail, the fields at
 * fault) and exit 1.
 */
import type { AppConfig } from '../config/index.ts'
import { sleep } from '../common/timers.ts'
import { createProgress } from './progress.ts'

export interface ApiCommandFlags {
  json: boolean
  from?: string | undefined
  kind?: string | undefined
  /** replay: follow the replay until the connector caught up, with a progress display. */
  follow?: boolean | undefined
}

interface Column {
  title: string
  get(row: Record<string, unknown>): unknown
}

class UsageError extends Error {}

class ApiError extends Error {
  constructor(readonly status: number, readonly body: unknown) {
    super(`HTTP ${status}`)
  }
}

function baseUrl(config: AppConfig): string {
  if (config.cli.apiUrl !== '') return config.cli.apiUrl.replace(/\/$/, '')
  const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host
  return `http://${host}:${config.http.port}`
}

async function call(config: AppConfig, method: string, path: string, body?: unknown): Promise<unknown> {
  const key = config.cli.apiKey !== '' ? config.cli.apiKey : config.management.adminApiKey
  const res = await fetch(`${baseUrl(config)}/v1${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  const parsed: unknown = text === '' ? null : JSON.parse(text)
  if (!res.ok) throw new ApiError(res.status, parsed)
  return parsed
}

/** Every page of a list (cursor pagination). */
async function listAll(config: AppConfig, path: string): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = []
  let cursor: string | null = null
  do {
    const sep = path.includes('?') ? '&' : '?'
    const page = (await call(config, 'GET', `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)) as {
      items: Array<Record<string, unknown>>
      nextCursor: string | null
    }
    out.push(...page.items)
    cursor = page.nextCursor
  } while (cursor)
  return out
}

export function renderTable(rows: Array<Record<string, unknown>>, columns: Column[]): string {
  const cells = rows.map((r) => columns.map((c) => {
    const v = c.get(r)
    return v === null || v === undefined ? '-' : v instanceof Object ? JSON.stringify(v) : String(v)
  }))
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)))
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(columns.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n'
}

const col = (title: string, key: string): Column => ({ title, get: (r) => key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], r) })


export async function apiCommand(config: AppConfig, command: string, args: string[], flags: ApiCommandFlags): Promise<number> {
  const [sub = 'list', id, extra] = args
  const out = (data: unknown, rows: () => string) => process.stdout.write(flags.json ? JSON.stringify(data, null, 2) + '\n' : rows())
  const need = (what: string, v: string | undefined): string => {
    if (!v) throw new UsageError(`${command} ${sub}: missing <${what}>`)
    return v
  }
  try {
    switch (`${command} ${sub}`) {
      case 'partners list': {
        const rows = await listAll(config, `/organizations?kind=${flags.kind ?? 'partner'}`)
        out(rows, () => renderTable(rows, [col('ID', 'id'), col('SLUG', 'slug'), col('NAME', 'name'), col('KIND', 'kind'), col('CREATED', 'createdAt')]))
        return 0
      }
      case 'grants list': {
        const rows = await listAll(config, '/grants')
        out(rows, () => renderTable(rows, [col('ID', 'id'), col('PUBLISHER', 'publisherId'), col('PARTNER', 'partnerId'), col('STATUS', 'status'), col('ACCEPTED', 'acceptedEventTypes'), col('PENDING', 'pendingEventTypes')]))
        return 0
      }
      case 'grants show': {
        const g = (await call(config, 'GET', `/grants/${encodeURIComponent(need('id', id))}`)) as Record<string, unknown>
        out(g, () => JSON.stringify(g, null, 2) + '\n')
        return 0
      }
      case 'grants accept': {
        // Accept the version read here, so a change the publisher makes meanwhile is not accepted unseen.
        const grantId = encodeURIComponent(need('id', id))
        const read = (await call(config, 'GET', `/grants/${grantId}`)) as Record<string, unknown>
        const g = (await call(config, 'POST', `/grants/${grantId}/accept`, { version: read.version })) as Record<string, unknown>
        out(g, () => `${String(g.id)}: accepted (${(g.acceptedEventTypes as string[]).join(', ')}) from ${String(g.publisherId)}\n`)
        return 0
      }
      case 'grants decline': {
        const grantId = need('id', id)
        await call(config, 'DELETE', `/grants/${encodeURIComponent(grantId)}`)
        out({ id: grantId, ended: true }, () => `${grantId}: ended; nothing more is delivered under it\n`)
        return 0
      }
      case 'subscriptions list': {
        const rows = await listAll(config, '/subscriptions')
        out(rows, () => renderTable(rows, [col('ID', 'id'), col('PARTNER', 'partnerId'), col('NAME', 'name'), col('EVENT TYPES', 'eventTypes'), col('SINK', 'sink.type'), col('URL', 'sink.url')]))
        return 0
      }
      case 'connectors list': {
        const rows = await listAll(config, '/connectors')
        out(rows, () => renderTable(rows, [col('ID', 'id'), col('DESIRED', 'desiredState'), col('STATE', 'status.state'), col('LAG', 'status.lag'), col('WORKER', 'status.workerId'), col('LAST ERROR', 'status.lastError.message')]))
        return 0
      }
      case 'connectors status': {
        const c = (await call(config, 'GET', `/connectors/${encodeURIComponent(need('id', id))}/status`)) as Record<string, unknown>
        // GET .../status answers the status itself (state, lag, ...), without the connector's id
        const row = { id, ...c }
        out(c, () => renderTable([row], [col('ID', 'id'), col('DESIRED', 'desiredState'), col('STATE', 'state'), col('LAG', 'lag'), col('WORKER', 'workerId'), col('LAST ERROR', 'lastError.message'), col('SNAPSHOT', 'snapshot.phase'), col('DONE', 'snapshot.done'), col('TOTAL', 'snapshot.total')]))
        return 0
      }
      case 'connectors pause':
      case 'connectors resume': {
        const c = (await call(config, 'PUT', `/connectors/${encodeURIComponent(need('id', id))}/${sub}`)) as Record<string, unknown>
        out(c, () => `${c.id}: desired state ${c.desiredState}\n`)
        return 0
      }
      case 'connectors replay': {
        const from = flags.from ?? extra
        if (!from) throw new UsageError('connectors replay: --from <ISO time|earliest|latest|snapshot> is required')
        let body: Record<string, unknown>
        if (from === 'earliest' || from === 'latest' || from === 'snapshot') body = { to: from }
        else {
          const t = Date.parse(from)
          if (Number.isNaN(t)) throw new UsageError(`connectors replay: --from "${from}" is not an ISO time, earliest, latest or snapshot`)
          body = { to: 'timestamp', timestamp: new Date(t).toISOString() }
        }
        const c = (await call(config, 'POST', `/connectors/${encodeURIComponent(need('id', id))}/offsets/reset`, body)) as Record<string, unknown>
        out(c, () => `${String(c.id)}: replay from ${from} requested; the worker applies it within seconds\n`)
        if (flags.follow) return followReplay(config, String(c.id), (c.offsetReset as { id: string }).id)
        return 0
      }
      case 'sources list': {
        const rows = await listAll(config, '/sources')
        out(rows, () => renderTable(rows, [col('ID', 'id'), col('NAME', 'name'), col('KIND', 'kind'), col('PUBLISHER', 'publisherId'), col('DESIRED', 'desiredState'), col('STATE', 'status.state'), col('PRODUCED', 'status.counts.produced'), col('LAST ERROR', 'status.lastError.message')]))
        return 0
      }
      case 'sources status': {
        const s = (await call(config, 'GET', `/sources/${encodeURIComponent(need('id', id))}/status`)) as Record<string, unknown>
        out(s, () => renderTable([s], [col('ID', 'id'), col('NAME', 'name'), col('DESIRED', 'desiredState'), col('STATE', 'state'), col('PRODUCED', 'counts.produced'), col('POSITION', 'position'), col('WORKER', 'workerId'), col('LAST ERROR', 'lastError.message')]))
        if (flags.follow) return followImport(config, String(id))
        return 0
      }
      case 'sources pause':
      case 'sources resume':
      case 'sources stop':
      case 'sources start': {
        const s = (await call(config, 'PUT', `/sources/${encodeURIComponent(need('id', id))}/${sub}`)) as Record<string, unknown>
        out(s, () => `${String(s.id)} (${String(s.name)}): desired state ${String(s.desiredState)}; the worker applies it within seconds\n`)
        return 0
      }
      case 'dlq list': {
        const rows = await listAll(config, `/subscriptions/${encodeURIComponent(need('subscriptionId', id))}/dead-letters`)
        out(rows, () => renderTable(rows, [col('EVENT', 'eventId'), col('TYPE', 'eventType'), col('KEY', 'key'), col('STATUS', 'status'), col('ATTEMPTS', 'attemptCount'), col('LAST ERROR', 'lastError')]))
        return 0
      }
      case 'dlq retry': {
        const subId = encodeURIComponent(need('subscriptionId', id))
        const r = await call(config, 'POST', extra ? `/subscriptions/${subId}/deliveries/${encodeURIComponent(extra)}/retry` : `/subscriptions/${subId}/dead-letters/retry`)
        out(r, () => `retry requested for ${extra ? `event ${extra}` : 'every dead letter'} of ${id}\n`)
        return 0
      }
      default:
        process.stderr.write(`distributary: unknown command "${command} ${sub}" (see distributary ${command} --help)\n`)
        return 2
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`distributary: ${err.message} (see distributary ${command} --help)\n`)
      return 2
    }
    if (err instanceof ApiError) {
      const p = (err.body ?? {}) as { title?: string; detail?: string; errors?: Array<{ field: string; message: string }> }
      const fields = (p.errors ?? []).map((e) => `\n  ${e.field}: ${e.message}`).join('')
      process.stderr.write(`distributary: ${err.status} ${p.title ?? ''}${p.detail ? `: ${p.detail}` : ''}${fields}\n`)
      return 1
    }
    if (err instanceof TypeError && String(err.message).includes('fetch failed')) {
      process.stderr.write(`distributary: the management API at ${baseUrl(config)} does not answer (is \`distributary start\` running? DISTRIBUTARY_API_URL)\n`)
      return 1
    }
    throw err
  }
}


interface StatusView {
  state: string
  lag: number | null
  appliedResetId: string | null
  lastError: { code: string; message: string } | null
}

/**
 * Follows a replay on stderr until the connector caught up: waits for a worker to apply the reset,
 * then counts the lag down (done = the lag when it was applied - the lag now). Ctrl-C stops following,
 * not the replay. Exit 1 when the connector fails or is stopped meanwhile.
 */
async function followReplay(config: AppConfig, id: string, resetId: string, pollMs = 1000): Promise<number> {
  const progress = createProgress(`replay ${id}`, { unit: 'events' })
  let total: number | null = null
  for (;;) {
    const s = (await call(config, 'GET', `/connectors/${encodeURIComponent(id)}/status`)) as StatusView
    if (s.state === 'failed' || s.state === 'stopped') {
      progress.finish(`connector ${s.state}${s.lastError ? `: ${s.lastError.code} ${s.lastError.message}` : ''}`)
      return 1
    }
    if (s.appliedResetId === resetId && s.lag !== null) {
      total = Math.max(total ?? 0, s.lag)
      progress.update(total - s.lag, total)
      if (s.lag === 0) {
        progress.finish(`caught up: ${total} events replayed`)
        return 0
      }
    } else if (total === null) progress.update(0)
    await sleep(pollMs)
  }
}

interface SourceStatusView {
  state: string
  position: { file?: string | null; line?: number | null; byte?: number | null; size?: number | null; filesDone?: number } | null
  counts: { produced: number }
  lastError: { code: string; message: string } | null
}

/**
 * Follows a CSV drop source's import on stderr: per file, a progress bar over its bytes acked (rate and
 * ETA), the rows produced in the final line. Ends when the source has no file in progress after one
 * (or none to begin with), or stops running; Ctrl-C stops following, not the import.
 */
async function followImport(config: AppConfig, id: string, pollMs = 1000): Promise<number> {
  let file: string | null = null
  let progress: ReturnType<typeof createProgress> | null = null
  let rowsAtStart = 0
  let seenFile = false
  let doneAtStart: number | null = null
  for (;;) {
    const s = (await call(config, 'GET', `/sources/${encodeURIComponent(id)}/status`)) as SourceStatusView
    const pos = s.position ?? {}
    const current = pos.file ?? null
    doneAtStart ??= pos.filesDone ?? 0
    if (current !== file) {
      progress?.finish(`done, ${s.counts.produced - rowsAtStart} rows produced`)
      progress = null
      file = current
      rowsAtStart = s.counts.produced
      if (current) {
        seenFile = true
        progress = createProgress(`import ${current}`, { unit: 'bytes', ...(pos.size ? { total: pos.size } : {}) })
      }
    }
    if (progress && pos.byte != null) progress.update(pos.byte, pos.size ?? undefined)
    if (s.state === 'failed' || s.state === 'stopped') {
      progress?.finish(`source ${s.state}${s.lastError ? `: ${s.lastError.code} ${s.lastError.message}` : ''}`)
      return s.state === 'failed' ? 1 : 0
    }
    // A file was imported (followed, or taken and finished between two looks): done. Until then: wait.
    if (!current && (seenFile || (pos.filesDone ?? 0) > doneAtStart)) {
      if (!seenFile) process.stderr.write(`source ${id}: ${(pos.filesDone ?? 0) - doneAtStart} file(s) imported, ${s.counts.produced} rows produced\n`)
      return 0
    }
    await new Promise((r) => setTimeout(r, pollMs))
  }
}
