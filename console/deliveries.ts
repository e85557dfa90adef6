/**
 * A subscription's deliveries: filtered by status, event type and time (the delivery log's search,
 * scoped as the API scopes it: a publisher sees its own events' deliveries only), newest first, each
 * with its attempts. Dead letters: retry one (the row then follows the delivery every 2 s until it
 * settles), or every dead letter matching the filter, at most RETRY_MATCHING_CAP, after the count is
 * shown and confirmed.
 */
import type { Router } from 'express'
import { NotFoundError, RequestInvalidError } from '../control-plane/errors.ts'
import { completeDelivery, matchesSearch, type DeliverySearch } from '../control-plane/deliveries.ts'
import { holdsWholeLife, type FailureCursor, type FailureStatus } from '../control-plane/delivery-failures.ts'
import type { DeliveryDoc, DeliveryStatus, SubscriptionDoc } from '../control-plane/types.ts'
import { field, type Ctx, type PageHandler } from './context.ts'
import { badge, html, iso, options, query, selectField, table, thead, time, type Html } from './html.ts'
import { canChange } from './subscriptions.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler

/** Dead letters one confirmation may retry at most (each is a retry request the worker performs in turn). */
export const RETRY_MATCHING_CAP = 500
const PAGE = 50
const STATUSES: DeliveryStatus[] = ['pending', 'retrying', 'delivered', 'dead']

interface Filter {
  status?: DeliveryStatus | undefined
  eventType?: string | undefined
  since?: string | undefined
  until?: string | undefined
}

const dateOf = (s: string | undefined, name: string): Date | undefined => {
  if (!s) return undefined
  const d = new Date(/Z$|[+-]\d\d:\d\d$/.test(s) ? s : `${s}Z`)
  if (Number.isNaN(d.getTime())) throw new RequestInvalidError([{ field: name, message: 'must be a date and time' }])
  return d
}

function filterOf(src: Record<string, unknown>, sub: SubscriptionDoc): Filter {
  const get = (k: string) => (typeof src[k] === 'string' && src[k] !== '' ? (src[k] as string) : undefined)
  const status = get('status')
  if (status !== undefined && !STATUSES.includes(status as DeliveryStatus))
    throw new RequestInvalidError([{ field: 'status', message: `must be one of ${STATUSES.join(', ')}` }])
  const eventType = get('eventType')
  if (eventType !== undefined && !sub.eventTypes.includes(eventType))
    throw new RequestInvalidError([{ field: 'eventType', message: 'is not an event type of this subscription' }])
  return { status: status as DeliveryStatus | undefined, eventType, since: get('since'), until: get('until') }
}

/** The filter's fields as hidden inputs (a form that acts on what the filter shows). */
const hiddenFilter = (f: Filter) =>
  (['eventType', 'since', 'until'] as const).map((k) =>
    f[k] ? html`<input type="hidden" name="${k}" value="${f[k]}" />` : '',
  )

function search(ctx: Ctx, sub: SubscriptionDoc, f: Filter): DeliverySearch {
  return {
    subscriptionId: sub._id,
    publisherId: ctx.deps.cp.deliveryPublisherScope(ctx.principal),
    status: f.status,
    eventType: f.eventType,
    since: dateOf(f.since, 'since'),
    until: dateOf(f.until, 'until'),
  }
}

/** When the next attempt is due (retrying deliveries): the last attempt plus the schedule's step. */
function nextRetry(ctx: Ctx, sub: SubscriptionDoc, d: DeliveryDoc): Html | string {
  if (d.status !== 'retrying' || d.attempts.length === 0) return ''
  const schedule = ctx.deps.cp.effectiveDeliveryPolicy(sub).retrySchedule
  const step = schedule[Math.min(d.attemptCount - 1, schedule.length - 1)]
  if (step === undefined) return ''
  return html`next retry about ${time(new Date(new Date(d.attempts.at(-1)!.at).getTime() + step * 1000))}`
}

function row(ctx: Ctx, sub: SubscriptionDoc, d: DeliveryDoc): Html {
  const url = `/console/subscriptions/${sub._id}/deliveries/${encodeURIComponent(d.eventId)}`
  const pending = d.retryRequestedAt !== null && d.status === 'dead'
  const follow = pending ? html` hx-get="${url}/row" hx-trigger="every 2s" hx-swap="outerHTML"` : ''
  const retry =
    canChange(ctx.principal, sub) && d.status === 'dead' && !pending && !d.test
      ? html`<button
          type="button"
          hx-post="${url}/retry"
          hx-target="closest tr"
          hx-swap="outerHTML"
          aria-label="Retry delivery of event ${d.eventId}"
        >
          Retry
        </button>`
      : ''
  const reason = d.deadReason && d.status === 'dead' ? html`<br /><span class="muted">${d.deadReason}</span>` : ''
  const marks = html`${pending ? html` ${badge('retry-requested')}` : ''}${d.test ? html` ${badge('test')}` : ''}`
  return html`<tr id="d-${d._id}" data-event-id="${d.eventId}" data-status="${d.status}" ${follow}>
    <td><code>${d.eventId}</code></td>
    <td>${d.eventType}</td>
    <td><code>${d.key}</code></td>
    <td>${badge(d.status)}${marks}${reason}</td>
    <td>${time(d.createdAt)}</td>
    <td>
      <details>
        <summary>${d.attemptCount} attempt${d.attemptCount === 1 ? '' : 's'}</summary>
        <table class="attempts">
          ${thead(['At', 'Status', 'Duration', 'Error', 'Response (excerpt)'])}
          <tbody>
            ${d.attempts.map(
              (a) =>
                html`<tr>
                  <td>${time(a.at)}</td>
                  <td>${a.statusCode ?? '–'}</td>
                  <td class="num">${a.durationMs} ms</td>
                  <td>${a.error ?? ''}</td>
                  <td><code>${a.responseExcerpt ?? ''}</code></td>
                </tr>`,
            )}
          </tbody>
        </table>
        ${nextRetry(ctx, sub, d)}
      </details>
    </td>
    <td>${retry}</td>
  </tr>`
}

/**
 * Failures (dead, retrying) newest first through the failures index (control-plane/delivery-failures.ts):
 * documents read by `_id` only, so a subscription with 100,000 deliveries answers in milliseconds on
 * FerretDB too. Each delivery is read again and kept only if it still matches (status, publisher,
 * type, time). Failures recorded before the index existed are found by searching the whole log (`all=1`).
 */
async function failures(
  ctx: Ctx,
  sub: SubscriptionDoc,
  f: Filter & { status: FailureStatus },
  cursor: string | undefined,
): Promise<{ items: DeliveryDoc[]; nextCursor: string | null; since: Date | null }> {
  const { cp } = ctx.deps
  const head = await cp.deliveries.failures.head(sub._id, f.status)
  if (!head) return { items: [], nextCursor: null, since: null }
  const q = search(ctx, sub, f)
  const m = /^f(\d+)\.(\d+)$/.exec(cursor ?? '')
  let at: FailureCursor | null = m ? { page: Number(m[1]), skip: Number(m[2]) } : null
  const items: DeliveryDoc[] = []
  const seen = new Set<string>()
  for (let round = 0; round < 5 && items.length < PAGE; round++) {
    const { ids, next } = await cp.deliveries.failures.newest(sub._id, f.status, PAGE - items.length, at)
    for (const d of await cp.deliveries.byIds(ids.filter((id) => !seen.has(id)))) {
      if (seen.has(d._id)) continue
      seen.add(d._id)
      if (matchesSearch(d, q)) items.push(completeDelivery(d))
    }
    at = next
    if (!at) break
  }
  return { items, nextCursor: at ? `f${at.page}.${at.skip}` : null, since: head.since }
}

const list: PageHandler = async (ctx) => {
  const sub = await ctx.deps.cp.getSubscription(ctx.principal, ctx.params.id!)
  const f = filterOf(ctx.query, sub)
  const indexed =
    (f.status === 'dead' || f.status === 'retrying') && ctx.query.all !== '1'
      ? await failures(ctx, sub, { ...f, status: f.status }, ctx.query.cursor)
      : null
  const found =
    indexed ?? (await ctx.deps.cp.deliveries.search(search(ctx, sub, f), { limit: PAGE, cursor: ctx.query.cursor }))
  const base = `/console/subscriptions/${sub._id}/deliveries`
  const orAny = (v: string) => v || 'any'
  const local = (s: string | undefined) => (s ? iso(dateOf(s, 'time')).replace(/Z$/, '') : '')
  const retryAll =
    canChange(ctx.principal, sub) && (f.status === undefined || f.status === 'dead')
      ? html`<form method="post" action="${base}/retry-matching" class="inline">
          <input type="hidden" name="_csrf" value="${ctx.session.csrf}" />
          ${hiddenFilter(f)}
          <button type="submit">Retry all dead letters matching this filter…</button>
        </form>`
      : ''
  const olderUrl = found.nextCursor ? `${base}${query({ ...f, cursor: found.nextCursor, all: ctx.query.all })}` : ''
  const older = olderUrl ? html`<p><a href="${olderUrl}">Older deliveries →</a></p>` : ''
  const recorded = indexed?.since
    ? html`Failures recorded since ${time(indexed.since)}, newest first.`
    : 'No failure recorded in the failures index.'
  // an index kept since the subscription was created holds every failure: there is nothing older to search for
  const covered = holdsWholeLife(indexed?.since, sub.createdAt)
  const whole = covered
    ? html`<p class="muted">Every failure since the subscription was created, newest first.</p>`
    : indexed
      ? html`<p class="muted">
          ${recorded} <a href="${base}${query({ ...f, all: '1' })}">Search the whole delivery log</a> (slower) for older
          ones.
        </p>`
      : ''
  const page = html`<p><a href="/console/subscriptions/${sub._id}">← ${sub.name}</a></p>
    <form method="get" action="${base}" class="filters card">
      ${selectField('f-status', 'status', 'Status', options(['', ...STATUSES], f.status ?? '', orAny))}
      ${selectField('f-type', 'eventType', 'Event type', options(['', ...sub.eventTypes], f.eventType ?? '', orAny))}
      <div>
        <label for="f-since">Since (UTC)</label
        ><input id="f-since" name="since" type="datetime-local" step="1" value="${local(f.since)}" />
      </div>
      <div>
        <label for="f-until">Until (UTC)</label
        ><input id="f-until" name="until" type="datetime-local" step="1" value="${local(f.until)}" />
      </div>
      <button type="submit">Filter</button>
    </form>
    ${retryAll}
    ${table(
      'Deliveries, newest first',
      ['Event', 'Type', 'Key', 'Status', 'Created', 'Attempts'],
      found.items.map((d) => row(ctx, sub, d)),
      { actions: true, empty: 'No deliveries match.' },
    )}
    ${older} ${whole}`
  return { page, title: `Deliveries of ${sub.name}`, current: '/console/subscriptions' }
}

async function deliveryOf(ctx: Ctx): Promise<{ sub: SubscriptionDoc; d: DeliveryDoc }> {
  const { cp } = ctx.deps
  const sub = await cp.getSubscription(ctx.principal, ctx.params.id!)
  const d = await cp.deliveries.get(sub._id, ctx.params.eventId!)
  const own = cp.deliveryPublisherScope(ctx.principal)
  if (!d || (own !== undefined && d.publisherId !== own)) throw new NotFoundError('delivery')
  return { sub, d }
}

const rowFragment: PageHandler = async (ctx) => {
  const { sub, d } = await deliveryOf(ctx)
  return { fragment: row(ctx, sub, d) }
}

const retryOne: PageHandler = async (ctx) => {
  const { sub } = await deliveryOf(ctx)
  await ctx.deps.cp.requestRetry(ctx.principal, sub._id, ctx.params.eventId!)
  const { d } = await deliveryOf(ctx)
  return { fragment: row(ctx, sub, d) }
}

const retryMatching: PageHandler = async (ctx) => {
  const { cp } = ctx.deps
  const sub = await cp.getSubscription(ctx.principal, ctx.params.id!)
  const f = { ...filterOf(ctx.form as Record<string, unknown>, sub), status: 'dead' as const }
  const found = await cp.deliveries.search(search(ctx, sub, f), { limit: RETRY_MATCHING_CAP + 1 })
  // a test event is not retried (send another)
  const matching = found.items.filter((d) => !d.test).slice(0, RETRY_MATCHING_CAP)
  const base = `/console/subscriptions/${sub._id}/deliveries`
  if (field(ctx.form, 'confirm') !== 'yes') {
    const more = found.items.length > RETRY_MATCHING_CAP
    const page = html`<p>
        ${more ? `More than ${RETRY_MATCHING_CAP}` : matching.length} dead letter${matching.length === 1 ? '' : 's'}
        match this filter${more ? `; the first ${RETRY_MATCHING_CAP} (newest) will be retried` : ''}.
      </p>
      <form method="post" action="${base}/retry-matching" class="card">
        <input type="hidden" name="_csrf" value="${ctx.session.csrf}" /><input
          type="hidden"
          name="confirm"
          value="yes"
        />
        ${hiddenFilter(f)}
        <button type="submit" ${matching.length === 0 ? html` disabled` : ''}>
          Retry ${matching.length} dead letter${matching.length === 1 ? '' : 's'}
        </button>
        <a href="${base}${query({ ...f })}">Cancel</a>
      </form>`
    return { page, title: 'Retry dead letters?', current: '/console/subscriptions' }
  }
  const unfiltered = !f.eventType && !f.since && !f.until && found.items.length <= RETRY_MATCHING_CAP
  if (unfiltered) await cp.requestRetry(ctx.principal, sub._id, null)
  else for (const d of matching) await cp.requestRetry(ctx.principal, sub._id, d.eventId)
  return { redirect: `${base}${query({ ...f })}` }
}

export function mountDeliveryPages(r: Router, h: Mount): void {
  r.get('/subscriptions/:id/deliveries', h(list))
  r.get('/subscriptions/:id/deliveries/:eventId/row', h(rowFragment))
  r.post('/subscriptions/:id/deliveries/:eventId/retry', h(retryOne))
  r.post('/subscriptions/:id/deliveries/retry-matching', h(retryMatching))
}
