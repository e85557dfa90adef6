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
import { badge, html, query, time, type Html } from './html.ts'
import { freshness, poll } from './status.ts'
import { canChange } from './subscriptions.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler

type Row = { cells: Record<string, string | number>; html: Html }

/** Sorts rows by a column (`sort`, `dir` from the query; unknown columns: the first). */
function sorted(rows: Row[], ctx: Ctx, columns: string[]): { rows: Row[]; sort: string; dir: 'asc' | 'desc' } {
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

const CONNECTOR_COLUMNS: Array<[string, string]> = [
  ['name', 'Subscription'],
  ['partner', 'Partner'],
  ['state', 'State'],
  ['lag', 'Lag (records)'],
  ['seconds', 'Lag (seconds)'],
  ['fresh', 'Freshness'],
  ['error', 'Last error'],
  ['worker', 'Worker'],
]

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
    const act = (a: string, label: string) =>
      html`<form method="post" action="/console/connectors/${c._id}/state" class="inline">
        ${csrf}<input type="hidden" name="action" value="${a}" /><button
          type="submit"
          aria-label="${label} ${sub?.name ?? c._id}"
        >
          ${label}
        </button>
      </form>`
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
        <td>${s.lastError ? html`<code>${s.lastError.code}</code> ${s.lastError.message}` : ''}</td>
        <td>${s.workerId ?? '–'}</td>
        <td>${actions}</td>
      </tr>`,
    }
  })
  const t = sorted(
    rows,
    ctx,
    CONNECTOR_COLUMNS.map(([k]) => k),
  )
  const self = `/console/connectors/table${query({ sort: t.sort, dir: t.dir })}`
  return html`<div class="table-wrap" id="connectors" ${poll(self)}>
    <table>
      <caption>
        Connectors (one per subscription)
      </caption>
      ${head('/console/connectors', CONNECTOR_COLUMNS, t.sort, t.dir)}
      <tbody>
        ${t.rows.map((r) => r.html)}${
          rows.length === 0
            ? html`<tr>
                <td colspan="9" class="muted">No connectors visible to this key.</td>
              </tr>`
            : ''
        }
      </tbody>
    </table>
  </div>`
}

const SOURCE_COLUMNS: Array<[string, string]> = [
  ['name', 'Source'],
  ['kind', 'Kind'],
  ['state', 'State'],
  ['seconds', 'Lag (seconds)'],
  ['produced', 'Produced'],
  ['reported', 'Reported'],
  ['error', 'Last error'],
  ['worker', 'Worker'],
]

async function sourceTable(ctx: Ctx): Promise<Html> {
  const list =
    ctx.principal.scope === 'partner' ? [] : (await ctx.deps.sources.list(ctx.principal, {}, { limit: 200 })).items
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.session.csrf}" />`
  const rows: Row[] = list.map((src) => {
    const s = sourceStatusView(src)
    const act = (a: string, label: string) =>
      html`<form method="post" action="/console/sources/${src._id}/state" class="inline">
        ${csrf}<input type="hidden" name="action" value="${a}" /><button
          type="submit"
          aria-label="${label} ${src.name}"
        >
          ${label}
        </button>
      </form>`
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
        <td>${s.lastError ? html`<code>${s.lastError.code}</code> ${s.lastError.message}` : ''}</td>
        <td>${s.workerId ?? '–'}</td>
        <td>${actions}</td>
      </tr>`,
    }
  })
  const t = sorted(
    rows,
    ctx,
    SOURCE_COLUMNS.map(([k]) => k),
  )
  return html`<div
    class="table-wrap"
    id="sources"
    ${poll(`/console/sources/table${query({ sort: t.sort, dir: t.dir })}`)}
  >
    <table>
      <caption>
        Sources
      </caption>
      ${head('/console/sources', SOURCE_COLUMNS, t.sort, t.dir)}
      <tbody>
        ${t.rows.map((r) => r.html)}${
          rows.length === 0
            ? html`<tr>
                <td colspan="8" class="muted">No sources visible to this key.</td>
              </tr>`
            : ''
        }
      </tbody>
    </table>
  </div>`
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
