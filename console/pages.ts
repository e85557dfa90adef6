/**
 * The console's routes: the overview, grants (a partner's publishers and what each grant lets it
 * receive; a publisher's partners, with offer, change and revoke), and the page modules mounted here
 * (subscriptions, deliveries, operators' connectors and sources, schemas and the event catalog, deals
 * and leads).
 */
import type { RequestHandler, Router } from 'express'
import { grantView } from '../api/management/http.ts'
import { entitlementsOf } from '../control-plane/stored-keys.ts'
import { RequestInvalidError } from '../control-plane/errors.ts'
import type { Entitlement, GrantDoc } from '../control-plane/types.ts'
import { field, fields, type ConsoleDeps, type Ctx, type PageHandler } from './context.ts'
import { mountDealPages } from './deals.ts'
import { mountInboundPages } from './inbound.ts'
import { mountDeliveryPages } from './deliveries.ts'
import { badge, choice, errorSummary, html, table, time, type Html } from './html.ts'
import { mountOperatorPages } from './operators.ts'
import { mountSchemaPages } from './schemas.ts'
import { nameOf, namesOf, orgCell } from './status.ts'
import { mountSubscriptionPages } from './subscriptions.ts'
import { EVENT_TYPES } from './catalog.ts'

const overview: PageHandler = async (ctx) => {
  const p = ctx.principal
  const org = p.organizationId ? await nameOf(ctx, p.organizationId) : 'the platform (admin key)'
  const links: Array<[string, string]> =
    p.scope === 'partner'
      ? [
          ['/console/grants', 'Your publishers and what each grant lets you receive'],
          ['/console/subscriptions', 'Your subscriptions, their deliveries and dead letters'],
          ['/console/deals', 'Your deal registrations and the leads assigned to you'],
        ]
      : p.scope === 'publisher'
        ? [
            ['/console/grants', 'Your partners and grants'],
            ['/console/connectors', "Your partners' connectors: state, lag, errors"],
            ['/console/sources', 'Your sources'],
            ['/console/schemas', 'Schemas'],
            ['/console/deals', 'Deals waiting for your decision, with their conflicts; the leads you shared'],
          ]
        : [
            ['/console/grants', 'Grants'],
            ['/console/subscriptions', 'Subscriptions'],
            ['/console/connectors', 'Connectors'],
            ['/console/sources', 'Sources'],
            ['/console/schemas', 'Schemas'],
            ['/console/deals', 'Deals and leads'],
          ]
  const page = html`<p>Signed in as <strong>${org}</strong> with a ${p.scope} key.</p>
    <ul class="links">
      ${links.map(([href, label]) => html`<li><a href="${href}">${label}</a></li>`)}
    </ul>`
  return { page, title: 'Overview', current: '/console/' }
}

function entitlementList(g: GrantDoc): Html {
  const v = grantView(g)
  return html`<ul class="entitlements">
    ${v.entitlements.map((e) => {
      const accepted = v.acceptedEventTypes.includes(e.eventType)
      const rows = e.filter
        ? Object.entries(e.filter)
            .map(([f, c]) => `${f} in ${c.in.join(', ')}`)
            .join('; ')
        : 'every row'
      return html`<li>
        <strong>${e.eventType}</strong> ${accepted ? badge('accepted') : badge('offered')}<br /><span class="muted"
          >rows: ${rows}; fields: ${e.fields ? e.fields.join(', ') : 'all'}</span
        >
      </li>`
    })}
  </ul>`
}

const grants: PageHandler = async (ctx) => {
  const p = ctx.principal
  const list = (await ctx.deps.cp.listGrants(p, {}, { limit: 200 })).items
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.session.csrf}" />`
  const other = (g: GrantDoc) => (p.scope === 'partner' ? g.publisherId : g.partnerId)
  const names = await namesOf(ctx, list.map(other))
  const rows = list.map((g) => {
    const v = grantView(g)
    const accept =
      (p.scope === 'partner' || p.scope === 'admin') && v.pendingEventTypes.length > 0
        ? html`<form method="post" action="/console/grants/${g._id}/accept" class="inline">
            ${csrf}<input type="hidden" name="version" value="${g.version}" /><button type="submit">Accept</button>
          </form>`
        : ''
    // htmx asks for a confirmation first (without JavaScript the form posts at once)
    const end = html`<form
      method="post"
      action="/console/grants/${g._id}/end"
      class="inline"
      hx-post="/console/grants/${g._id}/end"
      hx-confirm="End this grant? Delivery under it stops within seconds."
    >
      ${csrf}<button type="submit" class="danger">${p.scope === 'partner' ? 'Decline / revoke' : 'Revoke'}</button>
    </form>`
    return html`<tr>
      <td>${orgCell(names, other(g))}</td>
      <td>${entitlementList(g)}</td>
      <td>${badge(v.status)}</td>
      <td>${time(g.updatedAt)}</td>
      <td>${accept} ${end}</td>
    </tr>`
  })
  const offer = p.scope === 'publisher' || p.scope === 'admin' ? offerForm(ctx, {}, []) : ''
  const page = html`${table(
    p.scope === 'partner' ? 'Publishers and what each grant lets you receive' : 'Grants',
    [p.scope === 'partner' ? 'Publisher' : 'Partner', 'Event types, rows and fields', 'Status', 'Changed'],
    rows,
    { actions: true, empty: 'No grants yet.' },
  )}
  ${offer}`
  return {
    page,
    title: p.scope === 'partner' ? 'Publishers' : p.scope === 'publisher' ? 'Partners' : 'Grants',
    current: '/console/grants',
  }
}

/** Offer a grant, or change one (the same form: a publisher names the partner and the event types, rows and fields). */
function offerForm(
  ctx: Ctx,
  values: Record<string, string | string[] | undefined>,
  errors: Array<{ field: string; message: string }>,
): Html {
  const chosen = new Set(Array.isArray(values.eventTypes) ? values.eventTypes : [])
  const s = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : '')
  const publisher =
    ctx.principal.scope === 'admin'
      ? html`<label for="publisherId">Publisher id</label>
          <input id="publisherId" name="publisherId" value="${s('publisherId')}" />`
      : ''
  const on = (t: string) => chosen.has(t)
  const types = EVENT_TYPES.filter((t) => t !== 'partner.profile.changed')
  return html`<form method="post" action="/console/grants" class="card stack">
    <h2>Offer a grant, or change one</h2>
    ${errorSummary(errors)}
    <input type="hidden" name="_csrf" value="${ctx.session.csrf}" />
    ${publisher}
    <label for="partnerId">Partner id</label
    ><input id="partnerId" name="partnerId" required value="${s('partnerId')}" aria-describedby="partnerId-help" />
    <p class="help" id="partnerId-help">
      A partner you already have a grant with gets its grant changed: added event types wait for its acceptance, row
      filters are kept.
    </p>
    <fieldset>
      <legend>Event types</legend>
      ${types.map((t, i) => choice('checkbox', { id: `g-et-${i}`, name: 'eventTypes', value: t, label: t, on: on(t) }))}
    </fieldset>
    <label for="g-fields">Fields (optional, comma-separated; absent: all)</label
    ><input id="g-fields" name="fields" value="${s('fields')}" /> <button type="submit">Offer</button>
  </form>`
}

const offer: PageHandler = async (ctx) => {
  const { cp } = ctx.deps
  const p = ctx.principal
  const partnerId = field(ctx.form, 'partnerId')
  const list = field(ctx.form, 'fields')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
  try {
    const types = fields(ctx.form, 'eventTypes')
    if (types.length === 0)
      throw new RequestInvalidError([{ field: 'entitlements', message: 'name at least one event type' }])
    const publisherId = field(ctx.form, 'publisherId') || undefined
    if (p.scope === 'admin' && !publisherId) {
      throw new RequestInvalidError([{ field: 'publisherId', message: 'is required with an admin key' }])
    }
    const existing = (await cp.listGrants(p, { partnerId, ...(publisherId ? { publisherId } : {}) }, { limit: 1 }))
      .items[0]
    // a change keeps what the form cannot show: an event type's row filter, and its fields when none are given
    const before = new Map(existing ? entitlementsOf(existing.entitlements).map((e) => [e.eventType, e]) : [])
    const entitlements: Entitlement[] = types.map((eventType) => {
      const kept = before.get(eventType)
      const chosen = list.length > 0 ? list : kept?.fields
      return { eventType, ...(kept?.filter ? { filter: kept.filter } : {}), ...(chosen ? { fields: chosen } : {}) }
    })
    if (existing) await cp.updateGrant(p, existing._id, { entitlements })
    else await cp.createGrant(p, { partnerId, entitlements, ...(publisherId ? { publisherId } : {}) })
    return { redirect: '/console/grants' }
  } catch (err) {
    if (!(err instanceof RequestInvalidError)) throw err
    return {
      page: offerForm(ctx, { ...ctx.form, eventTypes: fields(ctx.form, 'eventTypes') }, err.errors),
      title: 'Offer a grant',
      current: '/console/grants',
      status: 422,
    }
  }
}

const accept: PageHandler = async (ctx) => {
  const version = Number(field(ctx.form, 'version'))
  await ctx.deps.cp.acceptGrant(
    ctx.principal,
    ctx.params.id!,
    Number.isInteger(version) && version > 0 ? version : undefined,
  )
  return { redirect: '/console/grants' }
}

const end: PageHandler = async (ctx) => {
  await ctx.deps.cp.deleteGrant(ctx.principal, ctx.params.id!)
  return { redirect: '/console/grants' }
}

export function mountPages(
  r: Router,
  deps: ConsoleDeps,
  handle: (deps: ConsoleDeps, h: PageHandler) => RequestHandler,
): void {
  const h = (handler: PageHandler) => handle(deps, handler)
  r.get('/', h(overview))
  r.get('/grants', h(grants))
  r.post('/grants', h(offer))
  r.post('/grants/:id/accept', h(accept))
  r.post('/grants/:id/end', h(end))
  mountSubscriptionPages(r, h)
  mountDeliveryPages(r, h)
  mountOperatorPages(r, h)
  mountSchemaPages(r, h)
  mountDealPages(r, h)
  mountInboundPages(r, h)
}
