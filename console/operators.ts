/**
 * Operators' pages (manufacturers and admins): the connectors of the subscriptions the key may see
 * (a publisher: its partners' subscriptions to what they accepted from it; the error text withheld
 * as the API withholds it) and the sources, each with state, lag, freshness, last error and worker,
 * sortable by any column, refreshed every 2 s; pause, resume and restart where the key may.
 */
import type { Router } from 'express'
import { connectorStatusView } from '../api/management/http.ts'
import { sourceStatusView } from '../api/management/sources.ts'
import { RequestInvalidError } from '../control-plane/errors.ts'
import type { DesiredState } from '../control-plane/types.ts'
import { field, type Ctx, type PageHandler } from './context.ts'
import { badge, html, query, rowsOr, time, type Html } from './html.ts'
import { freshness, poll } from './status.ts'
import { canChange } from './subscriptions.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler

type Row = { cells: Record<string, string | number>; html: Html }

/** Sorts rows by a column (`sort`, `dir` from the query; unknown columns: the first). */
function sorted(rows: Row[], ctx: Ctx, labels: Array<[string, string]>) {
  const columns = labels.map(([key]) => key)
  const sort = columns.includes(ctx.query.sort ?? '') ? ctx.query.sort! : columns[0]!
  const dir = ctx.query.dir === 'desc' ? 'desc' : 'asc'
  const out = [...rows].sort((a, b) => {
    const x = a.cells[sort] ?? ''
    const y = b.cells[sort] ?? ''
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))
    return dir === 'asc' ? c : -c
  })
  return { rows: out, sort, dir }
}

function head(base: string, labels: Array<[string, string]>, sort: string, dir: string): Html {
  return html`<thead>
    <tr>
      ${labels.map(([key, label]) => {
        const current = key === sort
        const next = current && dir === 'asc' ? 'desc' : 'asc'
        return html`<th scope="col" ${current ? html` aria-sort="${dir === 'asc' ? 'ascending' : 'descending'}"` : ''}>
          <a href="${base}${query({ sort: key, dir: next })}"
            >${label}${current ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}</a
          >
        </th>`
      })}
      <th scope="col"><span class="visually-hidden">Actions</span></th>
    </tr>
  </thead>`
}

/** A table's definition: `id` names it and its page (/console/<id>), `columns` are [sort key, label]. */
interface TableSpec {
  id: string
  caption: string
  columns: Array<[string, string]>
  /** Said when there are no rows. */
  empty: string
}

/**
 * A sortable table, polled every 2 s as its own fragment (/console/<id>/table, keeping the sort); its
 * last column holds each row's buttons.
 */
function sortableTable(ctx: Ctx, rows: Row[], t: TableSpec): Html {
  const base = `/console/${t.id}`
  const { sort, dir, rows: ordered } = sorted(rows, ctx, t.columns)
  return html`<div class="table-wrap" id="${t.id}" ${poll(`${base}/table${query({ sort, dir })}`)}>
    <table>
      <caption>
        ${t.caption}
      </caption>
      ${head(base, t.columns, sort, dir)}
      <tbody>
        ${rowsOr(
          ordered.map((r) => r.html),
          t.columns.length + 1,
          t.empty,
        )}
      </tbody>
    </table>
  </div>`
}

/** A button posting one change of the desired state (`action`) of the row's connector or source. */
const stateAction = (path: string, csrf: Html, name: string) => (a: string, label: string) =>
  html`<form method="post" action="${path}" class="inline">
    ${csrf}<input type="hidden" name="action" value="${a}" /><button type="submit" aria-label="${label} ${name}">
      ${label}
    </button>
  </form>`

/** The cells a row ends with: the last error, the worker, the buttons. */
const lastCells = (
  s: { lastError: { code: string; message: string } | null; workerId: string | null },
  actions: Html | string,
) =>
  html`<td>${s.lastError ? html`<code>${s.lastError.code}</code> ${s.lastError.message}` : ''}</td>
    <td>${s.workerId ?? '–'}</td>
    <td>${actions}</td>`

const CONNECTORS: TableSpec = {
  id: 'connectors',
  caption: 'Connectors (one per subscription)',
  columns: [
    ['name', 'Subscription'],
    ['partner', 'Partner'],
    ['state', 'State'],
    ['lag', 'Lag (records)'],
    ['seconds', 'Lag (seconds)'],
    ['fresh', 'Freshness'],
    ['error', 'Last error'],
    ['worker', 'Worker'],
  ],
  empty: 'No connectors visible to this key.',
}

async function connectorTable(ctx: Ctx): Promise<Html> {
  const { cp } = ctx.deps
  const p = ctx.principal
  const connectors = (await cp.listConnectors(p, { limit: 200 })).items
  const subs = new Map((await cp.listSubscriptions(p, {}, { limit: 200 })).items.map((s) => [s._id, s]))
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.session.csrf}" />`
  const rows: Row[] = connectors.map((c) => {
    const s = connectorStatusView(c, p)
    const sub = subs.get(c._id)
    const fresh = freshness(c)
    const since = s.freshnessBreachedSince
    const breach = since ? html` ${badge('behind-objective')} since ${time(since)}` : ''
    const act = stateAction(`/console/connectors/${c._id}/state`, csrf, sub?.name ?? c._id)
    const actions = canChange(p, c)
      ? html`${c.desiredState === 'paused' ? act('resume', 'Resume') : act('pause', 'Pause')}
        ${act('restart', 'Restart')}`
      : ''
    const cells = {
      name: sub?.name ?? c._id,
      partner: c.partnerId,
      state: s.state,
      lag: s.lag ?? -1,
      seconds: s.freshnessSeconds ?? -1,
      fresh: fresh.seconds ?? Number.MAX_SAFE_INTEGER,
      error: s.lastError?.code ?? '',
      worker: s.workerId ?? '',
    }
    return {
      cells,
      html: html`<tr>
        <td><a href="/console/subscriptions/${c._id}">${cells.name}</a></td>
        <td><code>${c.partnerId}</code></td>
        <td>${badge(s.state)}</td>
        <td class="num">${s.lag ?? '–'}</td>
        <td class="num">${s.freshnessSeconds ?? '–'}</td>
        <td>${fresh.text}${breach}</td>
        ${lastCells(s, actions)}
      </tr>`,
    }
  })
  return sortableTable(ctx, rows, CONNECTORS)
}

const SOURCES: TableSpec = {
  id: 'sources',
  caption: 'Sources',
  columns: [
    ['name', 'Source'],
    ['kind', 'Kind'],
    ['state', 'State'],
    ['seconds', 'Lag (seconds)'],
    ['produced', 'Produced'],
    ['reported', 'Reported'],
    ['error', 'Last error'],
    ['worker', 'Worker'],
  ],
  empty: 'No sources visible to this key.',
}

async function sourceTable(ctx: Ctx): Promise<Html> {
  const list =
    ctx.principal.scope === 'partner' ? [] : (await ctx.deps.sources.list(ctx.principal, {}, { limit: 200 })).items
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.session.csrf}" />`
  const rows: Row[] = list.map((src) => {
    const s = sourceStatusView(src)
    const act = stateAction(`/console/sources/${src._id}/state`, csrf, src.name)
    const pauseOrResume = src.desiredState === 'paused' ? act('resume', 'Resume') : act('pause', 'Pause')
    const actions =
      src.desiredState === 'stopped' ? act('start', 'Start') : html`${pauseOrResume} ${act('stop', 'Stop')}`
    const cells = {
      name: src.name,
      kind: src.kind,
      state: s.state,
      produced: s.counts.produced,
      reported: s.reportedAt ? new Date(s.reportedAt).getTime() : 0,
      error: s.lastError?.code ?? '',
      worker: s.workerId ?? '',
    }
    return {
      cells,
      html: html`<tr>
        <td>${src.name}</td>
        <td>${src.kind}</td>
        <td>${badge(s.state)}</td>
        <td class="num">${s.counts.produced}</td>
        <td>${time(s.reportedAt)}</td>
        ${lastCells(s, actions)}
      </tr>`,
    }
  })
  return sortableTable(ctx, rows, SOURCES)
}

type Action = 'pause' | 'resume' | 'restart' | 'stop' | 'start'
const action = (form: Ctx['form'], allowed: readonly Action[]): Action => {
  const a = field(form, 'action') as Action
  if (allowed.includes(a)) return a
  throw new RequestInvalidError([{ field: 'action', message: `must be one of ${allowed.join(', ')}` }])
}

export function mountOperatorPages(r: Router, h: Mount): void {
  // each table is a page, and the fragment its polling asks for
  const table = (path: string, title: string, render: (ctx: Ctx) => Promise<Html>) => {
    r.get(
      path,
      h(async (ctx) => ({ page: await render(ctx), title, current: `/console${path}` })),
    )
    r.get(
      `${path}/table`,
      h(async (ctx) => ({ fragment: await render(ctx) })),
    )
  }
  table('/connectors', 'Connectors', connectorTable)
  table('/sources', 'Sources', sourceTable)
  r.post(
    '/connectors/:id/state',
    h(async (ctx) => {
      const a = action(ctx.form, ['pause', 'resume', 'restart'])
      const id = ctx.params.id!
      if (a === 'restart') await ctx.deps.cp.restartConnector(ctx.principal, id)
      else await ctx.deps.cp.setDesiredState(ctx.principal, id, a === 'pause' ? 'paused' : 'running')
      return { redirect: '/console/connectors' }
    }),
  )
  r.post(
    '/sources/:id/state',
    h(async (ctx) => {
      const a = action(ctx.form, ['pause', 'resume', 'stop', 'start'])
      // a source has no restart of its own (the API's: start, pause, resume, stop; stop keeps the resume point)
      const state: DesiredState = a === 'pause' ? 'paused' : a === 'stop' ? 'stopped' : 'running'
      await ctx.deps.sources.setDesiredState(ctx.principal, ctx.params.id!, state)
      return { redirect: '/console/sources' }
    }),
  )
}
