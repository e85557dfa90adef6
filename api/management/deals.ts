/**
 * /v1/deals, /v1/leads, /v1/inbound-connectors and the CRM's /v1/inbound/{id} (docs/deals.md). The
 * views decide what each side sees: a partner never the registrations its deal conflicts with, only
 * that a conflict exists.
 */
import express, { type Router } from 'express'
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
import { collection, type Mounts } from './collection.ts'
import type { Ctx } from './http.ts'

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
  // when each secret rotated out stops being accepted (those whose overlap has ended are left out)
  previousSecrets: (c.previousSecrets ?? [])
    .filter((p) => p.expiresAt.getTime() > Date.now())
    .map((p) => ({ expiresAt: p.expiresAt })),
  createdAt: c.createdAt,
  updatedAt: c.updatedAt,
})

/** The routes behind an API key (mounted beside the others, after authentication and the request validator). */
export function mountDealRoutes(r: Router, reg: DealRegistry, mounts: Mounts): void {
  const { deals, leads, inbound } = reg
  const dealFor = (d: DealDoc, { principal }: Ctx) => dealView(d, principal)
  const dealRoutes = collection(r, mounts, '/deals', 'dealId')
  dealRoutes.list(({ principal, query: q }, page) => {
    const filter = { state: q.state, partnerId: q.partnerId, manufacturerId: q.manufacturerId }
    return deals.list(principal, filter, page)
  }, dealFor)
  dealRoutes.create(({ principal, body }) => deals.register(principal, body), dealFor)
  dealRoutes.get(
    ({ principal, id }) => deals.get(principal, id),
    ({ deal, history }, { principal }) => dealView(deal, principal, history),
  )
  dealRoutes.act(
    'post',
    '/actions',
    ({ principal, id, body }) =>
      deals.act(principal, id, body.action as DealAction, { reason: body.reason, changes: body.changes }),
    dealFor,
  )

  const leadRoutes = collection(r, mounts, '/leads', 'leadId')
  leadRoutes.list(({ principal, query }, page) => leads.list(principal, { state: query.state }, page), leadView)
  leadRoutes.create(({ principal, body }) => leads.create(principal, body), leadView)
  leadRoutes.get(({ principal, id }) => leads.get(principal, id), leadView)
  leadRoutes.act('post', '/actions', ({ principal, id, body }) => leads.act(principal, id, body.action, body), leadView)
  leadRoutes.act(
    'post',
    '/convert',
    ({ principal, id, body }) => leads.convert(principal, id, body),
    ({ lead, deal }, { principal }) => ({ lead: leadView(lead), deal: dealView(deal, principal) }),
    { status: 201, idempotent: true },
  )

  const inboundRoutes = collection(r, mounts, '/inbound-connectors', 'inboundId')
  inboundRoutes.list(
    ({ principal }, page) => inbound.list(principal, page),
    (c) => inboundView(c),
  )
  inboundRoutes.create(
    ({ principal, body }) => inbound.create(principal, body),
    ({ connector, secret }) => inboundView(connector, secret),
  )
  inboundRoutes.get(
    ({ principal, id }) => inbound.get(principal, id),
    (c) => inboundView(c),
  )
  inboundRoutes.update(
    ({ principal, id, body }) => inbound.update(principal, id, body),
    (c) => inboundView(c),
  )
  inboundRoutes.rotate(
    '/secret/rotate',
    ({ principal, id }, overlap) => inbound.rotateSecret(principal, id, overlap),
    ({ connector, secret }) => inboundView(connector, secret),
  )
  inboundRoutes.remove(({ principal, id }) => inbound.delete(principal, id))
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
  // another method: 405 naming POST, as the validator answers on every other route (the route has no API key, so
  // it reached the key check and was a 401)
  r.all('/inbound/:inboundId', (_req, res) => {
    res.setHeader('Allow', 'POST')
    sendProblem(res, { title: 'Method Not Allowed', status: 405, detail: 'method not allowed on this route' })
  })
}
