/**
 * Deal registration pages (docs/deals.md): a partner's registrations and the leads assigned to it
 * (accept, decline), a publisher's deals waiting for a decision with the registrations each conflicts
 * with side by side (approve, reject, return, review), the leads it shared, and one deal with its
 * history. Every read and step is the deals service's operation under the session's principal, as the
 * management API calls it (control-plane/deals/), shown through the API's own views (dealView hides
 * the conflicting registrations from a partner, and says what the caller may do now): a deal or lead
 * of another organization is the 404 page.
 */
import type { Router } from 'express'
import { dealView } from '../api/management/deals.ts'
import {
  DEAL_STATES,
  LEAD_STATES,
  type DealAction,
  type DealDoc,
  type DealState,
} from '../control-plane/deals/index.ts'
import { NotFoundError } from '../control-plane/errors.ts'
import { csrfField, field, queryChoice, type Ctx, type PageHandler } from './context.ts'
import { badge, columns, html, options, query, selectField, time, type Html } from './html.ts'
import { leadsTable, mountLeadPages, sides } from './leads.ts'
import { namesOf, orgCell, poll } from './status.ts'
import { actionBody } from './validate.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler
type DealView = ReturnType<typeof dealView>

const PAGE = 100
/** The states a publisher decides in (approve is allowed there). */
const WAITING: readonly DealState[] = ['submitted', 'conflict_review', 'under_review']
/** How many of each waiting state the decision list shows (older ones: the table's status filter). */
const WAITING_SHOWN = 50

const LABEL: Partial<Record<DealAction, string>> = {
  review: 'Start review',
  approve: 'Approve',
  reject: 'Reject',
  return: 'Return to the partner',
  won: 'Mark won',
  lost: 'Mark lost',
  cancel: 'Cancel the registration',
}
const DANGER = new Set<DealAction>(['reject', 'cancel', 'lost'])

const customer = (v: DealView) =>
  html`${v.endCustomer.name}${v.partnerReference ? html`<br /><span class="muted">${v.partnerReference}</span>` : ''}`
const products = (v: DealView) => v.lines.map((l) => `${l.sku} × ${l.quantity}`).join(', ')
/** "contoso.co.uk, GB, retail": where an end customer is. */
const place = (c: DealView['endCustomer']) =>
  [c.domain ?? 'no domain', c.country, ...(c.industry ? [c.industry] : [])].join(', ')
const amount = (v: DealView) => `${v.amount} ${v.currency}`
/** How people name a registration (buttons' accessible names, captions). */
const nameOfDeal = (v: DealView) =>
  `the registration of ${v.endCustomer.name}${v.partnerReference ? ` (${v.partnerReference})` : ''}`

// ------------------------------------------------------------------------- registrations

async function registrationsTable(ctx: Ctx): Promise<Html> {
  const p = ctx.principal
  const state = queryChoice(ctx, 'state', DEAL_STATES)
  const found = await ctx.deps.cp.registry.deals.list(p, { state }, { limit: PAGE, cursor: ctx.query.cursor })
  const views = found.items
    .map((d) => dealView(d, p))
    .sort((a, b) => b.registeredAt.getTime() - a.registeredAt.getTime())
  const cols = sides(p)
  const names = await namesOf(
    ctx,
    views.flatMap((v) => cols.map(([k]) => v[k])),
  )
  const self = `/console/deals/table${query({ state, cursor: ctx.query.cursor })}`
  const more = found.nextCursor
    ? html`<p><a href="/console/deals${query({ ...ctx.query, cursor: found.nextCursor })}">More registrations →</a></p>`
    : ''
  return html`<div id="registrations" ${poll(self)}>
    <div class="table-wrap">
      <table>
        <caption>
          ${p.scope === 'partner' ? 'Your deal registrations' : 'Deal registrations'}${state ? ` (${state})` : ''}
        </caption>
        <thead>
          <tr>
            ${columns([
              'End customer',
              ...cols.map(([, label]) => label),
              'Status',
              'Products',
              'Amount',
              'Submitted',
              'Updated',
              'Protection ends',
            ])}
          </tr>
        </thead>
        <tbody>
          ${views.map(
            (v) =>
              html`<tr data-deal-id="${v.id}" data-state="${v.state}">
                <td><a href="/console/deals/${v.id}">${customer(v)}</a></td>
                ${cols.map(([k]) => html`<td>${orgCell(names, v[k])}</td>`)}
                <td>${badge(v.state)}${v.conflict && p.scope === 'partner' ? html`<br />conflict` : ''}</td>
                <td>${products(v)}</td>
                <td class="num">${amount(v)}</td>
                <td>${time(v.registeredAt)}</td>
                <td>${time(v.updatedAt)}</td>
                <td>${v.protectionExpiresAt ? time(v.protectionExpiresAt) : html`<span class="muted">–</span>`}</td>
              </tr>`,
          )}${
            views.length === 0
              ? html`<tr>
                  <td colspan="${7 + cols.length}" class="muted">No registrations${state ? ` ${state}` : ''}.</td>
                </tr>`
              : ''
          }
        </tbody>
      </table>
    </div>
    ${more}
  </div>`
}

// ------------------------------------------------------------------------- conflicts and decisions

/** The registrations a deal conflicts with, as the caller may see them (a publisher and an admin only). */
async function conflictsOf(ctx: Ctx, d: DealDoc, seen: Map<string, Promise<DealDoc | null>>): Promise<DealDoc[]> {
  if (ctx.principal.scope === 'partner') return []
  const load = (id: string) =>
    ctx.deps.cp.registry.deals.get(ctx.principal, id).then(
      (r) => r.deal,
      (err: unknown) => {
        if (err instanceof NotFoundError) return null
        throw err
      },
    )
  const out = await Promise.all(
    d.conflictsWith.map((id) => {
      let found = seen.get(id)
      if (!found) seen.set(id, (found = load(id)))
      return found
    }),
  )
  return out.filter((x): x is DealDoc => x !== null)
}

/**
 * A deal beside the registrations it conflicted with when (re)submitted (the API's `conflictsWith`:
 * earlier ones pending then, or approved): one column each, the same facts in each row, their states
 * as they are now. Without conflicts, the deal alone (`alone`: the decision list's summary of it) or
 * only the sentence saying so.
 */
function sideBySide(v: DealView, others: DealView[], names: Map<string, string>, alone: boolean): Html {
  const all = [v, ...others]
  const n = others.length
  const what = 'of this customer and product (pending then, or approved) when it was submitted'
  const said = html`<p class="muted">
    ${n === 0 ? `No conflict with an earlier registration ${what}.` : ''}
    ${n > 0 ? `It conflicted with ${n} earlier registration${n === 1 ? '' : 's'} ${what}.` : ''}
  </p>`
  if (n === 0 && !alone) return said
  const row = (label: string, cell: (x: DealView) => Html | string) =>
    html`<tr>
      <th scope="row">${label}</th>
      ${all.map((x) => html`<td>${cell(x)}</td>`)}
    </tr>`
  return html`${said}
    <div class="table-wrap">
      <table class="compare" data-compare="${v.id}">
        <caption>
          ${n === 0 ? 'The registration' : 'Side by side'}
        </caption>
        <thead>
          <tr>
            <th scope="col"><span class="visually-hidden">Fact</span></th>
            ${all.map(
              (x, i) =>
                html`<th scope="col" data-deal-id="${x.id}">
                  <a href="/console/deals/${x.id}"
                    >${i === 0 ? 'This registration' : `Conflicting registration ${i}`}</a
                  >
                </th>`,
            )}
          </tr>
        </thead>
        <tbody>
          ${row('Partner', (x) => orgCell(names, x.partnerId))} ${row('End customer', customer)}
          ${row('Domain', (x) => place(x.endCustomer))} ${row('Products', products)} ${row('Amount', amount)}
          ${row('Status', (x) => badge(x.state))} ${row('Submitted', (x) => time(x.registeredAt))}
          ${row('Updated', (x) => time(x.updatedAt))} ${row('Expected close', (x) => x.expectedCloseDate)}
          ${row('Protection ends', (x) => (x.protectionExpiresAt ? time(x.protectionExpiresAt) : '–'))}
        </tbody>
      </table>
    </div>`
}

/**
 * The steps the caller may take on a deal now (the API's allowedActions), one button each, with an
 * optional reason. Resubmitting needs changes the console does not edit: the API or the CLI.
 */
function actionsForm(ctx: Ctx, v: DealView, from: 'list' | 'deal'): Html {
  const actions = v.allowedActions.filter((a) => a !== 'resubmit')
  const resubmit = v.allowedActions.includes('resubmit')
    ? html`<p class="muted">
        Resubmit it with changes through the API (<code>POST /v1/deals/{id}/actions</code>) or
        <code>distributary deals resubmit</code>.
      </p>`
    : html``
  if (actions.length === 0) return resubmit
  const reasonId = `reason-${from}-${v.id}`
  const reader = ctx.principal.scope === 'partner' ? 'the publisher' : 'the partner'
  return html`<form method="post" action="/console/deals/${v.id}/actions" class="stack">
      ${csrfField(ctx)}<input type="hidden" name="from" value="${from}" />
      <label for="${reasonId}">Reason (optional; ${reader} sees it)</label>
      <input id="${reasonId}" name="reason" type="text" maxlength="1000" />
      <div class="actions">
        ${actions.map(
          (a) =>
            html`<button
              type="submit"
              name="action"
              value="${a}"
              ${DANGER.has(a) ? html` class="danger"` : ''}
              aria-label="${LABEL[a] ?? a}: ${nameOfDeal(v)}"
            >
              ${LABEL[a] ?? a}
            </button>`,
        )}
      </div>
    </form>
    ${resubmit}`
}

/** A publisher's (or an admin's) queue: the deals waiting for a decision, oldest first, each with its conflicts. */
async function decisions(ctx: Ctx): Promise<Html> {
  const p = ctx.principal
  const { deals } = ctx.deps.cp.registry
  const pages = await Promise.all(WAITING.map((state) => deals.list(p, { state }, { limit: WAITING_SHOWN })))
  const waiting = pages.flatMap((pg) => pg.items).sort((a, b) => a.registeredAt.getTime() - b.registeredAt.getTime())
  const seen = new Map<string, Promise<DealDoc | null>>()
  const withConflicts = await Promise.all(waiting.map(async (d) => ({ d, others: await conflictsOf(ctx, d, seen) })))
  const names = await namesOf(
    ctx,
    withConflicts.flatMap(({ d, others }) => [d.partnerId, ...others.map((o) => o.partnerId)]),
  )
  const more = pages.some((pg) => pg.nextCursor !== null)
    ? html`<p class="muted">More are waiting: filter the registrations below by status.</p>`
    : ''
  return html`<section aria-labelledby="waiting-h">
    <h2 id="waiting-h">Waiting for ${p.scope === 'publisher' ? 'your' : 'a'} decision (${waiting.length})</h2>
    ${waiting.length === 0 ? html`<p class="muted">No registration waits for a decision.</p>` : ''}
    ${withConflicts.map(({ d, others }) => {
      const v = dealView(d, p)
      return html`<article class="card" data-decision="${v.id}" aria-labelledby="decide-${v.id}">
        <h3 id="decide-${v.id}">
          <a href="/console/deals/${v.id}">${v.endCustomer.name}</a> · ${names.get(v.partnerId) ?? v.partnerId}
          ${badge(v.state)}
        </h3>
        ${sideBySide(
          v,
          others.map((o) => dealView(o, p)),
          names,
          true,
        )}
        ${actionsForm(ctx, v, 'list')}
      </article>`
    })}
    ${more}
  </section>`
}

// ------------------------------------------------------------------------- pages

const list: PageHandler = async (ctx) => {
  const p = ctx.principal
  const state = queryChoice(ctx, 'state', DEAL_STATES) ?? ''
  const leadState = queryChoice(ctx, 'leadState', LEAD_STATES) ?? ''
  const any = html`<option value="">any</option>`
  const filters = html`<form method="get" action="/console/deals" class="filters card">
    ${selectField('f-state', 'state', 'Registrations with status', [any, ...options([...DEAL_STATES], state)])}
    ${selectField('f-lead-state', 'leadState', 'Leads with status', [any, ...options([...LEAD_STATES], leadState)])}
    <button type="submit">Filter</button>
  </form>`
  const page = html`${p.scope === 'partner' ? '' : await decisions(ctx)}
    <h2>${p.scope === 'partner' ? 'Your registrations' : 'All registrations'}</h2>
    ${filters} ${await registrationsTable(ctx)}
    <h2>Leads</h2>
    ${await leadsTable(ctx)}`
  return { page, title: 'Deals', current: '/console/deals' }
}

const tableFragment: PageHandler = async (ctx) => ({ fragment: await registrationsTable(ctx) })

const detail: PageHandler = async (ctx) => {
  const p = ctx.principal
  const { deal, history } = await ctx.deps.cp.registry.deals.get(p, ctx.params.id!)
  const v = dealView(deal, p, history)
  const others = (await conflictsOf(ctx, deal, new Map())).map((o) => dealView(o, p))
  const names = await namesOf(ctx, [v.partnerId, v.manufacturerId, ...others.map((o) => o.partnerId)])
  const c = v.endCustomer
  // a partner learns only that a conflict exists (the API's `conflict`), a publisher sees with whom
  const notice =
    p.scope === 'partner' && v.conflict
      ? html`<p class="notice notice-secret">
          Another registration claims this customer and one of these products; the publisher decides.
        </p>`
      : ''
  const conflicts =
    p.scope === 'partner'
      ? ''
      : html`<section class="card">
          <h2>Conflicts</h2>
          ${sideBySide(v, others, names, false)}
        </section>`
  const actions = actionsForm(ctx, v, 'deal')
  // the two tables hold no link: their wrappers take the focus, so the keyboard scrolls them at phone width
  const page = html`<p><a href="/console/deals">← Deals</a></p>
    ${notice}
    <section class="card">
      <h2>Registration</h2>
      <dl class="facts">
        <dt>Status</dt>
        <dd data-state="${v.state}">${badge(v.state)}</dd>
        <dt>Publisher</dt>
        <dd>${orgCell(names, v.manufacturerId)}</dd>
        <dt>Partner</dt>
        <dd>${orgCell(names, v.partnerId)}</dd>
        <dt>Partner reference</dt>
        <dd>${v.partnerReference ?? '–'}</dd>
        <dt>End customer</dt>
        <dd>${c.name}, ${place(c)}</dd>
        <dt>Amount</dt>
        <dd>${amount(v)}</dd>
        <dt>Expected close</dt>
        <dd>${v.expectedCloseDate}</dd>
        <dt>Protection ends</dt>
        <dd>${v.protectionExpiresAt ? time(v.protectionExpiresAt) : '–'}</dd>
        <dt>Decision reason</dt>
        <dd>${v.decisionReason ?? '–'}</dd>
        ${
          v.leadId
            ? html`<dt>From lead</dt>
                <dd><code>${v.leadId}</code></dd>`
            : ''
        }
        <dt>Submitted</dt>
        <dd>${time(v.registeredAt)}</dd>
        <dt>Updated</dt>
        <dd>${time(v.updatedAt)}</dd>
        <dt>Id</dt>
        <dd><code>${v.id}</code></dd>
      </dl>
    </section>
    <div class="table-wrap" tabindex="0" role="region" aria-label="Products">
      <table>
        <caption>
          Products
        </caption>
        <thead>
          <tr>
            ${columns(['SKU', 'Quantity', 'Unit price'])}
          </tr>
        </thead>
        <tbody>
          ${v.lines.map(
            (l) =>
              html`<tr>
                <td><code>${l.sku}</code></td>
                <td class="num">${l.quantity}</td>
                <td class="num">${l.unitPrice ?? '–'}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${conflicts}
    ${
      actions.text === ''
        ? ''
        : html`<section class="card">
            <h2>Actions</h2>
            ${actions}
          </section>`
    }
    <div class="table-wrap" tabindex="0" role="region" aria-label="History">
      <table id="history">
        <caption>
          History, oldest first
        </caption>
        <thead>
          <tr>
            ${columns(['Step', 'Action', 'From → to', 'At', 'By', 'Reason'])}
          </tr>
        </thead>
        <tbody>
          ${(v.history ?? []).map(
            (s) =>
              html`<tr>
                <td class="num">${s.version}</td>
                <td>${s.action}</td>
                <td>${s.from ?? 'new'} → ${s.to}</td>
                <td>${time(s.at)}</td>
                <td>the ${s.actor} (${s.via})</td>
                <td>${s.reason ?? ''}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>`
  return { page, title: `Deal: ${c.name}`, current: '/console/deals' }
}

const act: PageHandler = async (ctx) => {
  const id = ctx.params.id!
  const body = actionBody(ctx.form, 'DealAction')
  await ctx.deps.cp.registry.deals.act(ctx.principal, id, body.action as DealAction, body)
  return { redirect: field(ctx.form, 'from') === 'list' ? '/console/deals' : `/console/deals/${id}` }
}

export function mountDealPages(r: Router, h: Mount): void {
  r.get('/deals', h(list))
  r.get('/deals/table', h(tableFragment))
  r.get('/deals/:id', h(detail))
  r.post('/deals/:id/actions', h(act))
  mountLeadPages(r, h)
}
