/**
 * Leads on the deals page (docs/deals.md): those assigned to a partner, with accept and decline while
 * it may still answer (by `acceptBy`), and those a publisher shared, each with its steps. The leads
 * service's operations under the session's principal, as the management API calls them; a lead of
 * another organization is the 404 page.
 */
import type { Router } from 'express'
import { leadView } from '../api/management/deals.ts'
import { LEAD_STATES } from '../control-plane/deals/index.ts'
import type { Principal } from '../control-plane/types.ts'
import { csrfField, queryChoice, type Ctx, type PageHandler } from './context.ts'
import { badge, columns, html, query, time, type Html } from './html.ts'
import { namesOf, orgCell } from './status.ts'
import { actionBody } from './validate.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler
type LeadView = ReturnType<typeof leadView>

const PAGE = 100

/** The other side's columns: a partner sees the publisher, a publisher the partner, an admin both. */
export function sides(p: Principal): Array<['partnerId' | 'manufacturerId', string]> {
  if (p.scope === 'partner') return [['manufacturerId', 'Publisher']]
  if (p.scope === 'publisher') return [['partnerId', 'Partner']]
  return [
    ['partnerId', 'Partner'],
    ['manufacturerId', 'Publisher'],
  ]
}

function leadActions(ctx: Ctx, l: LeadView): Html {
  const p = ctx.principal
  if (l.state !== 'assigned' || p.scope === 'publisher') return html``
  const reasonId = `decline-${l.id}`
  const url = `/console/leads/${l.id}/actions`
  return html`<form method="post" action="${url}" class="inline">
      ${csrfField(ctx)}<button
        type="submit"
        name="action"
        value="accept"
        aria-label="Accept the lead ${l.company.name}"
      >
        Accept
      </button>
    </form>
    <form method="post" action="${url}" class="stack">
      ${csrfField(ctx)}<label for="${reasonId}">Reason for declining (optional)</label>
      <input id="${reasonId}" name="reason" type="text" maxlength="1000" />
      <button
        type="submit"
        name="action"
        value="decline"
        class="danger"
        aria-label="Decline the lead ${l.company.name}"
      >
        Decline
      </button>
    </form>`
}

const leadHistory = (l: LeadView, names: Map<string, string>) =>
  html`<details>
    <summary>${l.history.length} step${l.history.length === 1 ? '' : 's'}</summary>
    <ol>
      ${l.history.map(
        (s) =>
          html`<li>
            ${time(s.at)}: ${s.from ?? 'new'} → ${s.to} by the ${s.actor} (to
            ${names.get(s.partnerId) ?? s.partnerId})${s.reason ? `: ${s.reason}` : ''}
          </li>`,
      )}
    </ol>
  </details>`

export async function leadsTable(ctx: Ctx): Promise<Html> {
  const p = ctx.principal
  const state = queryChoice(ctx, 'leadState', LEAD_STATES)
  const found = await ctx.deps.cp.registry.leads.list(p, { state }, { limit: PAGE, cursor: ctx.query.leadCursor })
  const leads = found.items.map(leadView).sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
  const cols = sides(p)
  const names = await namesOf(ctx, [
    ...leads.flatMap((l) => cols.map(([k]) => l[k])),
    ...leads.flatMap((l) => l.history.map((s) => s.partnerId)),
  ])
  const more = found.nextCursor
    ? html`<p>
        <a href="/console/deals${query({ ...ctx.query, leadCursor: found.nextCursor })}#leads">More leads →</a>
      </p>`
    : ''
  return html`<div class="table-wrap" id="leads">
      <table>
        <caption>
          ${p.scope === 'partner' ? 'Leads assigned to you' : p.scope === 'publisher' ? 'Leads you shared' : 'Leads'}${
            state ? ` (${state})` : ''
          }
        </caption>
        <thead>
          <tr>
            ${columns(['Company', ...cols.map(([, l]) => l), 'Status', 'Products of interest', 'Answer by', 'History'])}
            <th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          ${leads.map(
            (l) =>
              html`<tr data-lead-id="${l.id}" data-state="${l.state}">
                <td>
                  ${l.company.name}<br /><span class="muted"
                    >${l.company.domain ?? 'no domain'}, ${l.company.country}</span
                  >
                  ${l.contact ? html`<br /><span class="muted">${l.contact.name}</span>` : ''}
                </td>
                ${cols.map(([k]) => html`<td>${orgCell(names, l[k])}</td>`)}
                <td>
                  ${badge(l.state)}${l.dealId ? html`<br /><a href="/console/deals/${l.dealId}">its deal</a>` : ''}
                  ${l.reason ? html`<br /><span class="muted">${l.reason}</span>` : ''}
                </td>
                <td>${l.productInterest.join(', ')}</td>
                <td>${time(l.acceptBy)}</td>
                <td>${leadHistory(l, names)}</td>
                <td>${leadActions(ctx, l)}</td>
              </tr>`,
          )}${
            leads.length === 0
              ? html`<tr>
                  <td colspan="${6 + cols.length}" class="muted">No leads${state ? ` ${state}` : ''}.</td>
                </tr>`
              : ''
          }
        </tbody>
      </table>
    </div>
    ${more}`
}

const actOnLead: PageHandler = async (ctx) => {
  const body = actionBody(ctx.form, 'LeadAction')
  const action = body.action as 'accept' | 'decline' | 'reassign'
  await ctx.deps.cp.registry.leads.act(ctx.principal, ctx.params.id!, action, body)
  return { redirect: '/console/deals#leads' }
}

export function mountLeadPages(r: Router, h: Mount): void {
  r.post('/leads/:id/actions', h(actOnLead))
}
