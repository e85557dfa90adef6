/**
 * Following a long operation on stderr (`--follow`): a replay until its connector caught up, a CSV
 * drop source's import file by file. Ctrl-C stops following, not the operation.
 */
import { data, type ManagementClient } from '../client/index.ts'
import { sleep } from '../common/timers.ts'
import { path, type Ctx } from './api-args.ts'
import { createProgress } from './progress.ts'

/**
 * Follows a replay on stderr until the connector caught up: waits for a worker to apply the reset,
 * then counts the lag down (done = the lag when it was applied - the lag now). Ctrl-C stops following,
 * not the replay. Exit 1 when the connector fails or is stopped meanwhile.
 */
export async function followReplay(api: ManagementClient, id: string, resetId: string, pollMs = 1000): Promise<number> {
  const progress = createProgress(`replay ${id}`, { unit: 'events' })
  let total: number | null = null
  for (;;) {
    const s = await data(api.GET('/connectors/{connectorId}/status', { params: path('connectorId', id) }))
    if (s.state === 'failed' || s.state === 'stopped') {
      progress.finish(
        `connector ${s.state}${s.lastError ? `: ${String(s.lastError.code)} ${String(s.lastError.message)}` : ''}`,
      )
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

/**
 * Waits for a test event's outcome (the worker holding the subscription sends it) and prints it with its attempts;
 * exit 0 once delivered, 1 when it failed or no worker performed it within `timeoutMs`.
 */
export async function followTest(
  ctx: Pick<Ctx, 'api' | 'out'>,
  subscriptionId: string,
  requestId: string,
  timeoutMs = 60_000,
  pollMs = 500,
): Promise<number> {
  const until = Date.now() + timeoutMs
  const params = { path: { subscriptionId, requestId } }
  for (;;) {
    const r = await data(ctx.api.GET('/subscriptions/{subscriptionId}/retry-requests/{requestId}', { params }))
    if (r.status === 'done' || Date.now() >= until) {
      const d =
        r.eventId === null || r.eventId === undefined
          ? undefined
          : await ctx.api.GET('/subscriptions/{subscriptionId}/deliveries/{eventId}', {
              params: { path: { subscriptionId, eventId: r.eventId } },
            })
      const attempts = d?.data?.attempts ?? []
      ctx.out(
        { ...r, delivery: d?.data ?? null },
        () =>
          [
            `${subscriptionId}: test event ${String(r.eventId)} (${String(r.eventType)}): ` +
              (r.status === 'done' ? String(r.outcome) : 'no worker sent it yet (is the subscription stopped?)'),
            ...attempts.map(
              (a) =>
                `  ${String(a.at)}  ${a.statusCode ?? 'no answer'}  ${a.durationMs ?? '?'} ms` +
                (a.error ? `  ${a.error}` : ''),
            ),
          ].join('\n') + '\n',
      )
      return r.status === 'done' && r.outcome === 'delivered' ? 0 : 1
    }
    await sleep(pollMs)
  }
}

/** What a csv-drop source reports as its position (SourceStatusView.position is the plug-in's own). */
interface CsvPosition {
  file?: string | null
  line?: number | null
  byte?: number | null
  size?: number | null
  filesDone?: number
}

/**
 * Follows a CSV drop source's import on stderr: per file, a progress bar over its bytes acked (rate and
 * ETA), the rows produced in the final line. Ends when the source has no file in progress after one
 * (or none to begin with), or stops running; Ctrl-C stops following, not the import.
 */
export async function followImport(api: ManagementClient, id: string, pollMs = 1000): Promise<number> {
  let file: string | null = null
  let progress: ReturnType<typeof createProgress> | null = null
  let rowsAtStart = 0
  let seenFile = false
  let doneAtStart: number | null = null
  for (;;) {
    const s = await data(api.GET('/sources/{sourceId}/status', { params: path('sourceId', id) }))
    const pos = (s.position ?? {}) as CsvPosition
    const produced = s.counts.produced ?? 0
    const current = pos.file ?? null
    doneAtStart ??= pos.filesDone ?? 0
    if (current !== file) {
      progress?.finish(`done, ${produced - rowsAtStart} rows produced`)
      progress = null
      file = current
      rowsAtStart = produced
      if (current) {
        seenFile = true
        progress = createProgress(`import ${current}`, { unit: 'bytes', ...(pos.size ? { total: pos.size } : {}) })
      }
    }
    if (progress && pos.byte != null) progress.update(pos.byte, pos.size ?? undefined)
    if (s.state === 'failed' || s.state === 'stopped') {
      progress?.finish(
        `source ${s.state}${s.lastError ? `: ${String(s.lastError.code)} ${String(s.lastError.message)}` : ''}`,
      )
      return s.state === 'failed' ? 1 : 0
    }
    // A file was imported (followed, or taken and finished between two looks): done. Until then: wait.
    if (!current && (seenFile || (pos.filesDone ?? 0) > doneAtStart)) {
      if (!seenFile)
        process.stderr.write(
          `source ${id}: ${(pos.filesDone ?? 0) - doneAtStart} file(s) imported, ${produced} rows produced\n`,
        )
      return 0
    }
    await sleep(pollMs)
  }
}
