/**
 * The management API under /v1: authentication (attempt limits before a key is verified) → rate limit per key → JSON
 * body (size-limited) → request
 * validation against the OpenAPI document → the routes below. Every route here is in the document
 * and the other way round (a test compares them).
 */
import express, { Router } from 'express'
import * as OpenApiValidator from 'express-openapi-validator'
import type { Logger } from '../../common/logger.ts'
import type { ControlPlane, DesiredState } from '../../control-plane/index.ts'
import { ForbiddenError, NotFoundError, RequestInvalidError } from '../../control-plane/index.ts'
import { openApiDocument, openApiDocumentCopy } from '../openapi/document.ts'
import { asyncApiDocument } from '../openapi/asyncapi.ts'
import { authenticate } from './auth.ts'
import { HttpRateLimit } from '../rate-limit.ts'
import type { RateLimit } from '../../common/token-buckets.ts'
import { SourceRegistry } from '../../control-plane/sources.ts'
import type { PartnerKafka } from '../../control-plane/partner-kafka.ts'
import type { Principal } from '../../control-plane/types.ts'
import { mountSourceRoutes } from './sources.ts'
import { mountDealRoutes, mountInboundRoute } from './deals.ts'
import {
  apiKeyView,
  connectorStatusView,
  connectorView,
  deliveryView,
  grantView,
  op,
  organizationView,
  pageRequest,
  pageView,
  problemHandler,
  retryRequestView,
  subscriptionView,
  subscriptionViewFor,
  type Handler,
} from './http.ts'

export interface ManagementOptions {
  controlPlane: ControlPlane
  logger: Logger
  bodyLimit: string
  rateLimit: RateLimit
  /** The folder of the publishers' drop folders (csv-drop folders lie in `<sourceDropRoot>/<publisherId>/`). */
  sourceDropRoot: string
  /**
   * Check every answer against the OpenAPI document too (an answer that does not conform becomes a 500): on in the
   * tests.
   */
  validateResponses?: boolean
  /** Partners' Kafka access (absent: no partner listener is configured; its routes answer 404). */
  partnerKafka?: PartnerKafka
}

const date = (s: string | undefined) => (s === undefined ? undefined : new Date(s))

export function managementRouter(options: ManagementOptions): Router {
  const cp = options.controlPlane
  const r = Router()
  const h = (handler: Handler) => op(cp, handler)
  const create = (handler: Handler) => op(cp, handler, { idempotent: true })

  // a CRM's decisions: signed, not behind an API key (docs/deals.md)
  mountInboundRoute(r, cp.registry, options.bodyLimit, options.logger)
  r.use(
    authenticate(cp, new HttpRateLimit('management', options.rateLimit), new Set(['/openapi.json', '/asyncapi.json'])),
  )
  r.use(express.json({ limit: options.bodyLimit }))
  r.use(
    OpenApiValidator.middleware({
      apiSpec: openApiDocumentCopy() as never,
      // JSON bodies are typed: "4" is not an integer and is refused with its field named (query and path
      // parameters, which are always strings, are still converted by the validator)
      validateRequests: { allowUnknownQueryParameters: false, coerceTypes: false },
      validateResponses: options.validateResponses ?? false,
      validateSecurity: false,
      validateApiSpec: true,
      ignoreUndocumented: false,
      fileUploader: false,
    }),
  )

  if (options.validateResponses) {
    // The validator checks the object given to res.json; what a client checks is its JSON (dates as
    // strings). Installed after the validator, this wrapper runs first and hands it the JSON.
    r.use((_req, res, next) => {
      const json = res.json.bind(res)
      res.json = (body?: unknown) => json(body === undefined ? body : JSON.parse(JSON.stringify(body)))
      next()
    })
  }

  r.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument)
  })
  const asyncApi = asyncApiDocument()
  r.get('/asyncapi.json', (_req, res) => {
    res.json(asyncApi)
  })

  // organizations
  r.get(
    '/organizations',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(
        await cp.listOrganizations(principal, { kind: query.kind as never }, pageRequest(query)),
        organizationView,
      ),
    })),
  )
  r.post(
    '/organizations',
    create(async ({ principal, body }) => ({
      status: 201,
      body: organizationView(await cp.createOrganization(principal, body)),
    })),
  )
  r.get(
    '/organizations/:organizationId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: organizationView(await cp.getOrganization(principal, params.organizationId!)),
    })),
  )
  r.patch(
    '/organizations/:organizationId',
    h(async ({ principal, params, body }) => ({
      status: 200,
      body: organizationView(await cp.updateOrganization(principal, params.organizationId!, body)),
    })),
  )

  // a partner's Kafka access: the partner itself or an admin
  const kafkaAccessOf = async (principal: Principal, organizationId: string): Promise<PartnerKafka> => {
    const org = await cp.getOrganization(principal, organizationId)
    if (org.kind !== 'partner') throw new NotFoundError('partner', { organizationId })
    if (!(
      principal.scope === 'admin' ||
      (principal.scope === 'partner' && principal.organizationId === organizationId)
    )) {
      throw new ForbiddenError('only the partner itself (or an admin) manages its Kafka access')
    }
    if (!options.partnerKafka)
      throw new NotFoundError('Kafka access (this installation gives partners none: KAFKA_PARTNER_BOOTSTRAP_SERVERS)', {
        organizationId,
      })
    return options.partnerKafka
  }
  r.get(
    '/organizations/:organizationId/kafka-access',
    h(async ({ principal, params }) => {
      const pk = await kafkaAccessOf(principal, params.organizationId!)
      return { status: 200, body: await pk.connectionSettings(params.organizationId!) }
    }),
  )
  r.post(
    '/organizations/:organizationId/kafka-access/credentials',
    create(async ({ principal, params }) => {
      const pk = await kafkaAccessOf(principal, params.organizationId!)
      return { status: 201, body: await pk.issueCredentials(params.organizationId!) }
    }),
  )
  r.delete(
    '/organizations/:organizationId/kafka-access/credentials',
    h(async ({ principal, params }) => {
      const pk = await kafkaAccessOf(principal, params.organizationId!)
      if (!(await pk.revokeCredentials(params.organizationId!)))
        throw new NotFoundError('Kafka credentials', { organizationId: params.organizationId })
      return { status: 204 }
    }),
  )

  // API keys
  r.get(
    '/api-keys',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(
        await cp.listKeys(
          principal,
          { organizationId: query.organizationId, prefix: query.prefix },
          pageRequest(query),
        ),
        apiKeyView,
      ),
    })),
  )
  r.post(
    '/api-keys',
    create(async ({ principal, body }) => {
      const { doc, key } = await cp.createKey(principal, body)
      return { status: 201, body: { ...apiKeyView(doc), key } }
    }),
  )
  r.get(
    '/api-keys/:keyId',
    h(async ({ principal, params }) => ({ status: 200, body: apiKeyView(await cp.getKey(principal, params.keyId!)) })),
  )
  r.delete(
    '/api-keys/:keyId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: apiKeyView(await cp.revokeKey(principal, params.keyId!)),
    })),
  )
  r.post(
    '/api-keys/:keyId/rotate',
    create(async ({ principal, params, body }) => {
      const { doc, key } = await cp.rotateKey(principal, params.keyId!, body?.overlapSeconds ?? 86400)
      return { status: 201, body: { ...apiKeyView(doc), key } }
    }),
  )

  // grants
  r.get(
    '/grants',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(
        await cp.listGrants(
          principal,
          { partnerId: query.partnerId, publisherId: query.publisherId },
          pageRequest(query),
        ),
        grantView,
      ),
    })),
  )
  r.post(
    '/grants',
    create(async ({ principal, body }) => ({ status: 201, body: grantView(await cp.createGrant(principal, body)) })),
  )
  r.get(
    '/grants/:grantId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: grantView(await cp.getGrant(principal, params.grantId!)),
    })),
  )
  r.patch(
    '/grants/:grantId',
    h(async ({ principal, params, body }) => ({
      status: 200,
      body: grantView(await cp.updateGrant(principal, params.grantId!, body)),
    })),
  )
  r.post(
    '/grants/:grantId/accept',
    h(async ({ principal, params, body }) => ({
      status: 200,
      body: grantView(await cp.acceptGrant(principal, params.grantId!, body?.version)),
    })),
  )
  r.delete(
    '/grants/:grantId',
    h(async ({ principal, params }) => {
      await cp.deleteGrant(principal, params.grantId!)
      return { status: 204 }
    }),
  )

  // subscriptions
  const withSecret = (s: Parameters<typeof subscriptionView>[0], secret: string | null) => ({
    ...subscriptionView(s, cp),
    ...(secret !== null ? { webhookSecret: secret } : {}),
  })
  r.get(
    '/subscriptions',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(
        await cp.listSubscriptions(
          principal,
          { partnerId: query.partnerId, eventType: query.eventType },
          pageRequest(query),
        ),
        subscriptionViewFor(principal, cp),
      ),
    })),
  )
  r.post(
    '/subscriptions',
    create(async ({ principal, body }) => {
      const { subscription, webhookSecret } = await cp.createSubscription(principal, body)
      return { status: 201, body: withSecret(subscription, webhookSecret) }
    }),
  )
  r.get(
    '/subscriptions/:subscriptionId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: subscriptionViewFor(principal, cp)(await cp.getSubscription(principal, params.subscriptionId!)),
    })),
  )
  r.patch(
    '/subscriptions/:subscriptionId',
    h(async ({ principal, params, body }) => {
      const { subscription, webhookSecret } = await cp.updateSubscription(principal, params.subscriptionId!, body)
      return { status: 200, body: withSecret(subscription, webhookSecret) }
    }),
  )
  r.delete(
    '/subscriptions/:subscriptionId',
    h(async ({ principal, params }) => {
      await cp.deleteSubscription(principal, params.subscriptionId!)
      return { status: 204 }
    }),
  )
  r.post(
    '/subscriptions/:subscriptionId/webhook-secrets/rotate',
    create(async ({ principal, params, body }) => {
      const { subscription, webhookSecret } = await cp.rotateWebhookSecret(
        principal,
        params.subscriptionId!,
        body?.overlapSeconds ?? 86400,
      )
      return { status: 201, body: withSecret(subscription, webhookSecret) }
    }),
  )

  // deliveries
  r.get(
    '/subscriptions/:subscriptionId/deliveries',
    h(async ({ principal, params, query }) => {
      const sub = await cp.getSubscription(principal, params.subscriptionId!)
      const found = await cp.deliveries.search(
        {
          subscriptionId: sub._id,
          publisherId: cp.deliveryPublisherScope(principal),
          eventId: query.eventId,
          key: query.key,
          status: query.status as never,
          since: date(query.since),
          until: date(query.until),
        },
        pageRequest(query),
      )
      return { status: 200, body: pageView(found, deliveryView) }
    }),
  )
  r.get(
    '/subscriptions/:subscriptionId/deliveries/:eventId',
    h(async ({ principal, params }) => {
      const sub = await cp.getSubscription(principal, params.subscriptionId!)
      const d = await cp.deliveries.get(sub._id, params.eventId!)
      const own = cp.deliveryPublisherScope(principal)
      if (!d || (own !== undefined && d.publisherId !== own))
        throw new NotFoundError('delivery', { eventId: params.eventId })
      return { status: 200, body: deliveryView(d) }
    }),
  )
  r.post(
    '/subscriptions/:subscriptionId/deliveries/:eventId/retry',
    create(async ({ principal, params }) => ({
      status: 202,
      body: retryRequestView(await cp.requestRetry(principal, params.subscriptionId!, params.eventId!)),
    })),
  )
  r.get(
    '/subscriptions/:subscriptionId/dead-letters',
    h(async ({ principal, params, query }) => {
      const sub = await cp.getSubscription(principal, params.subscriptionId!)
      return {
        status: 200,
        body: pageView(
          await cp.deliveries.search(
            { subscriptionId: sub._id, publisherId: cp.deliveryPublisherScope(principal), status: 'dead' },
            pageRequest(query),
          ),
          deliveryView,
        ),
      }
    }),
  )
  r.post(
    '/subscriptions/:subscriptionId/dead-letters/retry',
    create(async ({ principal, params }) => ({
      status: 202,
      body: retryRequestView(await cp.requestRetry(principal, params.subscriptionId!, null)),
    })),
  )
  r.post(
    '/subscriptions/:subscriptionId/test',
    create(async ({ principal, params, body }) => {
      const req = await cp.requestTestEvent(principal, params.subscriptionId!, body)
      const at = `/v1/subscriptions/${encodeURIComponent(req.subscriptionId)}`
      return {
        status: 202,
        body: retryRequestView(req),
        headers: { Location: `${at}/retry-requests/${encodeURIComponent(req._id)}` },
      }
    }),
  )
  r.get(
    '/subscriptions/:subscriptionId/retry-requests/:requestId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: retryRequestView(await cp.getRetryRequest(principal, params.subscriptionId!, params.requestId!)),
    })),
  )

  // connectors
  r.get(
    '/connectors',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(await cp.listConnectors(principal, pageRequest(query)), (c) => connectorView(c, principal)),
    })),
  )
  r.get(
    '/connectors/:connectorId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: connectorView(await cp.getConnector(principal, params.connectorId!), principal),
    })),
  )
  r.get(
    '/connectors/:connectorId/status',
    h(async ({ principal, params }) => ({
      status: 200,
      body: connectorStatusView(await cp.getConnector(principal, params.connectorId!), principal),
    })),
  )
  const setState = (state: DesiredState) =>
    h(async ({ principal, params }) => ({
      status: 202,
      body: connectorView(await cp.setDesiredState(principal, params.connectorId!, state)),
    }))
  r.put('/connectors/:connectorId/pause', setState('paused'))
  r.put('/connectors/:connectorId/resume', setState('running'))
  r.put('/connectors/:connectorId/stop', setState('stopped'))
  r.post(
    '/connectors/:connectorId/restart',
    h(async ({ principal, params }) => ({
      status: 202,
      body: connectorView(await cp.restartConnector(principal, params.connectorId!)),
    })),
  )
  r.post(
    '/connectors/:connectorId/offsets/reset',
    h(async ({ principal, params, body }) => {
      if (body.to === 'timestamp' && body.timestamp === undefined)
        throw new RequestInvalidError([{ field: 'timestamp', message: 'is required when to is timestamp' }])
      const ts = body.timestamp !== undefined ? new Date(body.timestamp) : null
      return { status: 202, body: connectorView(await cp.resetConnector(principal, params.connectorId!, body.to, ts)) }
    }),
  )

  // sources (source connectors: csv-drop, mongodb)
  const sources = new SourceRegistry(cp.cols, cp.box, { dropRoot: options.sourceDropRoot, urlGuard: cp.guard })
  mountSourceRoutes(r, sources, h, create)
  mountDealRoutes(r, cp.registry, h, create)

  // maintenance
  r.post(
    '/maintenance/reencrypt-secrets',
    h(async ({ principal }) => {
      if (principal.scope !== 'admin') throw new ForbiddenError('only an admin key may re-encrypt secrets')
      return { status: 200, body: { reencrypted: (await cp.resealSecrets()) + (await sources.resealSecrets()) } }
    }),
  )

  r.use(problemHandler(options.logger))
  return r
}
