/**
 * The live parts of the subscription pages: a connector's state, lag and freshness, and a replay's
 * progress. Each renders as a fragment that asks for itself again every 2 s (htmx polling), so the
 * page stays current without a reload; a finished replay stops asking.
 */
import { connectorStatusView } from '../api/management/http.ts'
import { LruMap } from '../common/lru-map.ts'
import { NotFoundError } from '../control-plane/errors.ts'
import { grantAccepts } from '../control-plane/entitlements.ts'
import type { ConnectorDoc, Principal, SubscriptionDoc } from '../control-plane/types.ts'
import type { Ctx } from './context.ts'
import { age, badge, html, time, type Html } from './html.ts'

/** Polling attributes: the element replaces itself with a fresh copy every 2 s. */
export const poll = (url: string) => html`hx-get="${url}" hx-trigger="every 2s" hx-swap="outerHTML"`

/**
 * How old a partner's view is (docs/freshness.md). The worker reports with each status the age of the
 * oldest record not yet delivered to the subscription (`freshnessSeconds`, 0 when caught up) and the
 * lag in records. Caught up at the report: everything published before it was delivered, so the view is
 * at most as old as the report. Behind: the oldest waiting record has aged since the report too. A
 * worker that reports no age gives the lag in records only.
 */
export function freshness(
  c: ConnectorDoc | null,
  now = Date.now(),
): { text: string; behind: boolean; seconds: number | null } {
  const s = c?.status
  if (!s || s.lag === null)
    return { text: 'not reported yet (no worker runs this subscription now)', behind: true, seconds: null }
  const since = now - new Date(s.reportedAt).getTime()
  const f = s.freshnessSeconds
  if (f === 0 || (f == null && s.lag === 0)) return { text: `${age(since)} old`, behind: false, seconds: since / 1000 }
  const records = `${s.lag.toLocaleString('en-US')} record${s.lag === 1 ? '' : 's'} waiting`
  if (f == null) return { text: `behind: ${records} (as of ${age(since)} ago)`, behind: true, seconds: null }
  const seconds = f + since / 1000
  return { text: `${age(seconds * 1000)} old (${records})`, behind: true, seconds }
}

/**
 * The publishers whose events a subscription receives (accepted grants of its event types), by name
 * when the caller may see it.
 */
export async function publishersOf(ctx: Ctx, sub: SubscriptionDoc): Promise<Array<{ id: string; name: string }>> {
  const grants = await ctx.deps.cp.cols.grants.find({ partnerId: sub.partnerId }).toArray()
  const ids = grants.filter((g) => grantAccepts(g).some((t) => sub.eventTypes.includes(t))).map((g) => g.publisherId)
  const own = ctx.principal.scope === 'publisher' ? ids.filter((id) => id === ctx.principal.organizationId) : ids
  return Promise.all(own.map(async (id) => ({ id, name: await nameOf(ctx, id) })))
}

/** An organization's name as the caller may see it (its id otherwise: a partner sees no publisher's organization). */
export async function nameOf(ctx: Ctx, id: string): Promise<string> {
  try {
    return (await ctx.deps.cp.getOrganization(ctx.principal, id)).name
  } catch (err) {
    if (err instanceof NotFoundError) return id
    throw err
  }
}

/** Organizations' names as the caller may see them (their ids otherwise), each looked up once. */
export async function namesOf(ctx: Ctx, ids: Iterable<string>): Promise<Map<string, string>> {
  const unique = [...new Set(ids)]
  return new Map(await Promise.all(unique.map(async (id) => [id, await nameOf(ctx, id)] as const)))
}

/** An organization in a table cell: its name when the caller may see it, and its id. */
export const orgCell = (names: Map<string, string>, id: string): Html => {
  const name = names.get(id) ?? id
  return html`${name !== id ? html`${name}<br />` : ''}<code>${id}</code>`
}

const STOCK: Record<string, string> = {
  'inventory.level.changed': 'stock',
  'deal.registered': 'deal registrations',
  'partner.profile.changed': 'partner profiles',
}
const what = (types: string[]) => [...new Set(types.map((t) => STOCK[t] ?? t))].join(' and ')

export function statusPanel(
  c: ConnectorDoc,
  sub: SubscriptionDoc,
  publishers: Array<{ id: string; name: string }>,
  p: Principal,
): Html {
  const s = connectorStatusView(c, p)
  const fresh = freshness(c)
  const lastError = s.lastError
    ? html`<code>${s.lastError.code}</code> ${s.lastError.message} (${time(s.lastError.at)})`
    : html`<span class="muted">none</span>`
  const viewOf = (publisher: string) => `Your view of ${publisher}'s ${what(sub.eventTypes)} is ${fresh.text}.`
  return html`<section class="card" id="status" aria-live="polite" ${poll(`/console/subscriptions/${sub._id}/status`)}>
    <h2>Status</h2>
    <dl class="facts">
      <dt>State</dt>
      <dd>
        ${badge(s.state)}
        <span class="muted">(desired: ${s.desiredState}${s.pendingChanges ? ', changes pending' : ''})</span>
      </dd>
      <dt>Lag</dt>
      <dd>
        ${s.lag === null ? html`<span class="muted">not reported</span>` : `${s.lag.toLocaleString('en-US')} records`}
        ${s.freshnessSeconds != null ? `· oldest waiting ${s.freshnessSeconds} s` : ''}
        ${s.freshnessBreachedSince ? html`· ${badge('behind-objective')} since ${time(s.freshnessBreachedSince)}` : ''}
      </dd>
      <dt>Worker</dt>
      <dd>${s.workerId ?? html`<span class="muted">none</span>`}</dd>
      <dt>Reported</dt>
      <dd>${time(s.reportedAt)}</dd>
      <dt>Last error</dt>
      <dd>${lastError}</dd>
    </dl>
    <ul class="freshness">
      ${publishers.map((pub) => html`<li class="${fresh.behind ? 'behind' : 'fresh'}">${viewOf(pub.name)}</li>`)}
    </ul>
  </section>`
}

/** Lag seen at most per offset reset (this process): the start of its progress bar. */
const replayLag = new LruMap<string, number>(1000)

export function replayProgress(c: ConnectorDoc, subId: string): Html {
  const reset = c.offsetReset
  if (!reset) return html`<div id="replay"></div>`
  const applied = c.status?.appliedResetId === reset.id
  const lag = c.status?.lag ?? null
  const from = reset.to === 'timestamp' ? time(reset.timestamp) : html`${reset.to}`
  let value = 0
  let label: string
  let done = false
  if (!applied) label = 'requested; waiting for the worker to apply it'
  else if (lag === null) label = 'applied; waiting for the first report'
  else {
    const max = Math.max(replayLag.get(reset.id) ?? 0, lag)
    replayLag.set(reset.id, max)
    value = max === 0 ? 100 : Math.floor(((max - lag) * 100) / max)
    done = lag === 0
    label = done
      ? 'complete: the subscription has caught up'
      : `${(max - lag).toLocaleString('en-US')} of ${max.toLocaleString('en-US')} records`
  }
  return html`<div id="replay" class="card" ${done ? '' : poll(`/console/subscriptions/${subId}/replay`)}>
    <h2>Replay from ${from}</h2>
    <label for="replay-progress">Progress (${value}%)</label>
    <progress id="replay-progress" max="100" value="${value}" data-done="${done ? 'true' : 'false'}">
      ${value}%
    </progress>
    <p class="muted">${label}. Requested ${time(reset.requestedAt)}.</p>
  </div>`
}
