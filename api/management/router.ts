/**
 * The management API under /v1: authentication (attempt limits before a key is verified) → rate limit per key → JSON
 * body (size-limited) → request
 * validation against the OpenAPI document → the routes below. Every route here is in the document
 * and the other way round (a test compares them).
 */
import express, { Router } from 'express'
import * as OpenApiValidator from 'express-openapi-validator'
import type { Logger } from '../../common/logger.ts'
import type { ControlPlane, DesiredState, Page, SubscriptionCreated } from '../../control-plane/index.ts'
import { ForbiddenError, NotFoundError } from '../../control-plane/index.ts'
import { openApiDocument, openApiDocumentCopy } from '../openapi/document.ts'
import { asyncApiDocument } from '../openapi/asyncapi.ts'
import { authenticate } from './auth.ts'
import { HttpRateLimit } from '../rate-limit.ts'
import type { RateLimit } from '../../common/token-buckets.ts'
import { SourceRegistry } from '../../control-plane/sources.ts'
import type { PartnerKafka } from '../../control-plane/partner-kafka.ts'
import type { ApiKeyDoc, ConnectorDoc, DeliveryDoc, Principal, SubscriptionDoc } from '../../control-plane/types.ts'
import { collection, type ItemCtx, type Mounts } from './collection.ts'
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
  refuseNamelessQueryKeys,
  retryRequestView,
  subscriptionView,
  subscriptionViewFor,
  type Ctx,
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
  const mounts: Mounts = { h, create }

  // a CRM's decisions: signed, not behind an API key (docs/deals.md)
  mountInboundRoute(r, cp.registry, options.bodyLimit, options.logger)
  r.use(
    authenticate(cp, new HttpRateLimit('management', options.rateLimit), new Set(['/openapi.json', '/asyncapi.json'])),
  )
  // any JSON value is parsed (not only objects and arrays): the validator below then names what the body should be
  // ("body: must be object"), where a body of 0, null or "x" was answered "is not valid JSON", which it is
  r.use(express.json({ limit: options.bodyLimit, strict: false }))
  r.use(refuseNamelessQueryKeys)
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
  const organizations = collection(r, mounts, '/organizations', 'organizationId')
  organizations.list(
    ({ principal, query }, page) => cp.listOrganizations(principal, { kind: query.kind as never }, page),
    organizationView,
  )
  organizations.create(({ principal, body }) => cp.createOrganization(principal, body), organizationView)
  organizations.get(({ principal, id }) => cp.getOrganization(principal, id), organizationView)
  organizations.update(({ principal, id, body }) => cp.updateOrganization(principal, id, body), organizationView)

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
  const keys = collection(r, mounts, '/api-keys', 'keyId')
  const withKey = ({ doc, key }: { doc: ApiKeyDoc; key: string }) => ({ ...apiKeyView(doc), key })
  // a list's filter is its query (validated against the document), of which the control plane reads the fields it knows
  keys.list(({ principal, query }, page) => cp.listKeys(principal, query, page), apiKeyView)
  keys.create(({ principal, body }) => cp.createKey(principal, body), withKey)
  keys.get(({ principal, id }) => cp.getKey(principal, id), apiKeyView)
  keys.act('delete', '', ({ principal, id }) => cp.revokeKey(principal, id), apiKeyView)
  keys.rotate('/rotate', ({ principal, id }, overlap) => cp.rotateKey(principal, id, overlap), withKey)

  // grants
  const grants = collection(r, mounts, '/grants', 'grantId')
  grants.list(({ principal, query }, page) => cp.listGrants(principal, query, page), grantView)
  grants.create(({ principal, body }) => cp.createGrant(principal, body), grantView)
  grants.get(({ principal, id }) => cp.getGrant(principal, id), grantView)
  grants.update(({ principal, id, body }) => cp.updateGrant(principal, id, body), grantView)
  grants.act('post', '/accept', ({ principal, id, body }) => cp.acceptGrant(principal, id, body?.version), grantView)
  grants.remove(({ principal, id }) => cp.deleteGrant(principal, id))

  // subscriptions
  const subscriptions = collection(r, mounts, '/subscriptions', 'subscriptionId')
  const visible = (s: SubscriptionDoc, { principal }: Ctx) => subscriptionViewFor(principal, cp)(s)
  const withSecret = ({ subscription, webhookSecret }: SubscriptionCreated) => ({
    ...subscriptionView(subscription, cp),
    ...(webhookSecret !== null ? { webhookSecret } : {}),
  })
  subscriptions.list(({ principal, query }, page) => cp.listSubscriptions(principal, query, page), visible)
  subscriptions.create(({ principal, body }) => cp.createSubscription(principal, body), withSecret)
  subscriptions.get(({ principal, id }) => cp.getSubscription(principal, id), visible)
  subscriptions.update(({ principal, id, body }) => cp.updateSubscription(principal, id, body), withSecret)
  subscriptions.remove(({ principal, id }) => cp.deleteSubscription(principal, id))
  subscriptions.rotate(
    '/webhook-secrets/rotate',
    ({ principal, id }, overlap) => cp.rotateWebhookSecret(principal, id, overlap),
    withSecret,
  )

  // deliveries (a publisher sees those of its own events only)
  const ofSubscription = async ({ principal, id }: ItemCtx) => ({
    subscriptionId: (await cp.getSubscription(principal, id))._id,
    publisherId: cp.deliveryPublisherScope(principal),
  })
  const deliveryPage = (found: Page<DeliveryDoc>) => pageView(found, deliveryView)
  subscriptions.get(
    async (ctx) =>
      cp.deliveries.search(
        {
          ...(await ofSubscription(ctx)),
          eventId: ctx.query.eventId,
          key: ctx.query.key,
          status: ctx.query.status as never,
          since: date(ctx.query.since),
          until: date(ctx.query.until),
        },
        pageRequest(ctx.query),
      ),
    deliveryPage,
    '/deliveries',
  )
  subscriptions.get(
    async (ctx) => {
      const { subscriptionId, publisherId } = await ofSubscription(ctx)
      const d = await cp.deliveries.get(subscriptionId, ctx.params.eventId!)
      if (!d || (publisherId !== undefined && d.publisherId !== publisherId))
        throw new NotFoundError('delivery', { eventId: ctx.params.eventId })
      return d
    },
    deliveryView,
    '/deliveries/:eventId',
  )
  const retry = { status: 202, idempotent: true }
  subscriptions.act(
    'post',
    '/deliveries/:eventId/retry',
    ({ principal, id, params }) => cp.requestRetry(principal, id, params.eventId!),
    retryRequestView,
    retry,
  )
  subscriptions.get(
    async (ctx) => cp.deliveries.search({ ...(await ofSubscription(ctx)), status: 'dead' }, pageRequest(ctx.query)),
    deliveryPage,
    '/dead-letters',
  )
  subscriptions.act(
    'post',
    '/dead-letters/retry',
    ({ principal, id }) => cp.requestRetry(principal, id, null),
    retryRequestView,
    retry,
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
  subscriptions.get(
    ({ principal, id, params }) => cp.getRetryRequest(principal, id, params.requestId!),
    retryRequestView,
    '/retry-requests/:requestId',
  )

  // connectors
  const connectors = collection(r, mounts, '/connectors', 'connectorId')
  const seenBy = (c: ConnectorDoc, { principal }: Ctx) => connectorView(c, principal)
  connectors.list(({ principal }, page) => cp.listConnectors(principal, page), seenBy)
  connectors.get(({ principal, id }) => cp.getConnector(principal, id), seenBy)
  connectors.get(
    ({ principal, id }) => cp.getConnector(principal, id),
    (c, { principal }) => connectorStatusView(c, principal),
    '/status',
  )
  const accepted = { status: 202 }
  const setState = (part: string, state: DesiredState) =>
    connectors.act(
      'put',
      part,
      ({ principal, id }) => cp.setDesiredState(principal, id, state),
      (c) => connectorView(c),
      accepted,
    )
  setState('/pause', 'paused')
  setState('/resume', 'running')
  setState('/stop', 'stopped')
  connectors.act(
    'post',
    '/restart',
    ({ principal, id }) => cp.restartConnector(principal, id),
    (c) => connectorView(c),
    accepted,
  )
  connectors.act(
    'post',
    '/offsets/reset',
    async ({ principal, id, body }) => {
      // the schema has a timestamp with `to: timestamp`, and only then
      const ts = body.timestamp !== undefined ? new Date(body.timestamp) : null
      return cp.resetConnector(principal, id, body.to, ts)
    },
    (c) => connectorView(c),
    accepted,
  )

  // sources (source connectors: csv-drop, mongodb)
  const sources = new SourceRegistry(cp.cols, cp.box, { dropRoot: options.sourceDropRoot, urlGuard: cp.guard })
  mountSourceRoutes(r, sources, mounts)
  mountDealRoutes(r, cp.registry, mounts)

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
