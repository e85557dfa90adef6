/**
 * /v1/deals, /v1/leads, /v1/inbound-connectors and the CRM's /v1/inbound/{id} (docs/deals.md). The
 * views decide what each side sees: a partner never the registrations its deal conflicts with, only
 * that a conflict exists.
 */
import express, { type RequestHandler, type Router } from 'express'
import type { Logger } from '../../common/logger.ts'
import { isStoreUnavailable } from '../../common/store-errors.ts'
import {
  allowedActions,
  type DealAction,
  type DealDoc,
  type DealRegistry,
  type DealTransitionDoc,
  type InboundConnectorDoc,
  type LeadDoc,
} from '../../control-plane/deals/index.ts'
import type { Principal } from '../../control-plane/types.ts'
import { sendProblem, sendStoreUnavailable } from '../problem.ts'
import { pageRequest, pageView, type Handler } from './http.ts'

export function dealView(d: DealDoc, p: Principal, history?: DealTransitionDoc[]) {
  const partnerSide = p.scope === 'partner'
  const actor = p.scope === 'admin' ? undefined : p.scope
  return {
    id: d._id,
    manufacturerId: d.manufacturerId,
    partnerId: d.partnerId,
    state: d.state,
    version: d.version,
    partnerReference: d.partnerReference,
    endCustomer: d.endCustomer,
    lines: d.lines,
    amount: d.amount,
    currency: d.currency,
    expectedCloseDate: d.expectedCloseDate,
    protectionExpiresAt: d.protectionExpiresAt,
    decisionReason: d.decisionReason,
    leadId: d.leadId,
    conflict: d.state === 'conflict_review',
    ...(partnerSide ? {} : { conflictsWith: d.conflictsWith }),
    allowedActions: allowedActions(d.state, actor).filter((a) => !['expire', 'release', 'remind'].includes(a)),
    registeredAt: d.registeredAt,
    updatedAt: d.updatedAt,
    ...(history
      ? {
          history: history.map((t) => ({
            version: t.version,
            action: t.action,
            from: t.from,
            to: t.to,
            at: t.at,
            actor: t.by.actor,
            via: t.by.via,
            reason: t.reason,
          })),
        }
      : {}),
  }
}

export const leadView = (l: LeadDoc) => ({
  id: l._id,
  manufacturerId: l.manufacturerId,
  partnerId: l.partnerId,
  state: l.state,
  version: l.version,
  company: l.company,
  contact: l.contact,
  productInterest: l.productInterest,
  acceptBy: l.acceptBy,
  reason: l.reason,
  dealId: l.dealId,
  createdAt: l.createdAt,
  updatedAt: l.updatedAt,
  history: l.history.map((h) => ({
    version: h.version,
    from: h.from,
    to: h.to,
    partnerId: h.partnerId,
    actor: h.by.actor,
    at: h.at,
    reason: h.reason,
  })),
})

export const inboundView = (c: InboundConnectorDoc, secret?: string) => ({
  id: c._id,
  publisherId: c.publisherId,
  name: c.name,
  mapping: c.mapping,
  toleranceSeconds: c.toleranceSeconds,
  url: `/v1/inbound/${c._id}`,
  ...(secret !== undefined ? { secret } : {}),
  createdAt: c.createdAt,
})

/** The routes behind an API key (mounted beside the others, after authentication and the request validator). */
export function mountDealRoutes(
  r: Router,
  reg: DealRegistry,
  h: (handler: Handler) => RequestHandler,
  create: (handler: Handler) => RequestHandler,
): void {
  const { deals, leads, inbound } = reg
  r.get(
    '/deals',
    h(async ({ principal, query }) => {
      const q = { state: query.state, partnerId: query.partnerId, manufacturerId: query.manufacturerId }
      return {
        status: 200,
        body: pageView(await deals.list(principal, q, pageRequest(query)), (d) => dealView(d, principal)),
      }
    }),
  )
  r.post(
    '/deals',
    create(async ({ principal, body }) => ({
      status: 201,
      body: dealView(await deals.register(principal, body), principal),
    })),
  )
  r.get(
    '/deals/:dealId',
    h(async ({ principal, params }) => {
      const { deal, history } = await deals.get(principal, params.dealId!)
      return { status: 200, body: dealView(deal, principal, history) }
    }),
  )
  r.post(
    '/deals/:dealId/actions',
    h(async ({ principal, params, body }) => {
      const after = await deals.act(principal, params.dealId!, body.action as DealAction, {
        reason: body.reason,
        changes: body.changes,
      })
      return { status: 200, body: dealView(after, principal) }
    }),
  )

  r.get(
    '/leads',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(await leads.list(principal, { state: query.state }, pageRequest(query)), leadView),
    })),
  )
  r.post(
    '/leads',
    create(async ({ principal, body }) => ({ status: 201, body: leadView(await leads.create(principal, body)) })),
  )
  r.get(
    '/leads/:leadId',
    h(async ({ principal, params }) => ({ status: 200, body: leadView(await leads.get(principal, params.leadId!)) })),
  )
  r.post(
    '/leads/:leadId/actions',
    h(async ({ principal, params, body }) => ({
      status: 200,
      body: leadView(await leads.act(principal, params.leadId!, body.action, body)),
    })),
  )
  r.post(
    '/leads/:leadId/convert',
    create(async ({ principal, params, body }) => {
      const { lead, deal } = await leads.convert(principal, params.leadId!, body)
      return { status: 201, body: { lead: leadView(lead), deal: dealView(deal, principal) } }
    }),
  )

  r.get(
    '/inbound-connectors',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(await inbound.list(principal, pageRequest(query)), (c) => inboundView(c)),
    })),
  )
  r.post(
    '/inbound-connectors',
    create(async ({ principal, body }) => {
      const { connector, secret } = await inbound.create(principal, body)
      return { status: 201, body: inboundView(connector, secret) }
    }),
  )
  r.get(
    '/inbound-connectors/:inboundId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: inboundView(await inbound.get(principal, params.inboundId!)),
    })),
  )
  r.delete(
    '/inbound-connectors/:inboundId',
    h(async ({ principal, params }) => {
      await inbound.delete(principal, params.inboundId!)
      return { status: 204 }
    }),
  )
}

/**
 * POST /inbound/{inboundId}: the CRM's call, authenticated by its signature over the raw body (so
 * mounted before the API-key authentication and the JSON parser).
 */
export function mountInboundRoute(r: Router, reg: DealRegistry, bodyLimit: string, logger: Logger): void {
  r.post('/inbound/:inboundId', express.raw({ type: 'application/json', limit: bodyLimit }), (req, res, next) => {
    if (!req.is('application/json')) {
      sendProblem(res, {
        title: 'Unsupported Media Type',
        status: 415,
        detail: "send the CRM's JSON with Content-Type application/json",
        errors: [{ field: 'body', message: 'is not JSON' }],
      })
      return
    }
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
    const headers = {
      'webhook-id': req.get('webhook-id'),
      'webhook-timestamp': req.get('webhook-timestamp'),
      'webhook-signature': req.get('webhook-signature'),
    }
    reg.inbound.receive(req.params.inboundId!, headers, raw).then(
      (answer) => {
        if (answer.status >= 400) sendProblem(res, answer.body as never)
        else res.status(answer.status).json(answer.body)
      },
      (err: unknown) => {
        if (isStoreUnavailable(err)) {
          sendStoreUnavailable(res, 'changed')
          return
        }
        logger.error('inbound call failed', { inboundId: req.params.inboundId, err })
        next(err)
      },
    )
  })
}
