/**
 * Every API command and its subcommands (`distributary grants accept <id>`): the arguments and flags
 * each takes, what it does, and how it prints (a table or a line; the API's JSON with --json).
 */
import { allPages, data, type Schemas } from '../client/index.ts'
import {
  col,
  entitlements,
  overlapSeconds,
  PAGE,
  path,
  printList,
  printOne,
  renderTable,
  requestBody,
  subscriptionFields,
  UsageError,
  type Ctx,
  type Sub,
} from './api-args.ts'
import { followImport, followReplay } from './follow.ts'

const orgColumns = [
  col('ID', 'id'),
  col('SLUG', 'slug'),
  col('NAME', 'name'),
  col('KIND', 'kind'),
  col('CREATED', 'createdAt'),
]
const grantColumns = [
  col('ID', 'id'),
  col('PUBLISHER', 'publisherId'),
  col('PARTNER', 'partnerId'),
  col('STATUS', 'status'),
  col('ACCEPTED', 'acceptedEventTypes'),
  col('PENDING', 'pendingEventTypes'),
]
const subscriptionColumns = [
  col('ID', 'id'),
  col('PARTNER', 'partnerId'),
  col('NAME', 'name'),
  col('EVENT TYPES', 'eventTypes'),
  col('SINK', 'sink.type'),
  col('URL', 'sink.url'),
]
const connectorColumns = [
  col('ID', 'id'),
  col('DESIRED', 'desiredState'),
  col('STATE', 'status.state'),
  col('LAG', 'status.lag'),
  col('WORKER', 'status.workerId'),
  col('LAST ERROR', 'status.lastError.message'),
]
const deadLetterColumns = [
  col('EVENT', 'eventId'),
  col('TYPE', 'eventType'),
  col('KEY', 'key'),
  col('STATUS', 'status'),
  col('ATTEMPTS', 'attemptCount'),
  col('LAST ERROR', 'lastError'),
]
const sourceColumns = [
  col('ID', 'id'),
  col('NAME', 'name'),
  col('KIND', 'kind'),
  col('PUBLISHER', 'publisherId'),
  col('DESIRED', 'desiredState'),
  col('STATE', 'status.state'),
  col('PRODUCED', 'status.counts.produced'),
  col('LAST ERROR', 'status.lastError.message'),
]
const keyColumns = [
  col('ID', 'id'),
  col('PREFIX', 'prefix'),
  col('SCOPE', 'scope'),
  col('ORGANIZATION', 'organizationId'),
  col('NAME', 'name'),
  col('EXPIRES', 'expiresAt'),
  col('REVOKED', 'revokedAt'),
  col('LAST USED', 'lastUsedAt'),
]

async function listOrganizations(ctx: Ctx, kind: string | undefined): Promise<number> {
  if (kind !== undefined && kind !== 'partner' && kind !== 'publisher')
    throw new UsageError(`--kind must be partner or publisher (got "${kind}")`)
  return printList(
    ctx,
    allPages((cursor) => data(ctx.api.GET('/organizations', { params: { query: { limit: PAGE, cursor, kind } } }))),
    orgColumns,
  )
}

const showGrant = (ctx: Ctx, id: string) => data(ctx.api.GET('/grants/{grantId}', { params: path('grantId', id) }))

async function endGrant(ctx: Ctx): Promise<number> {
  const grantId = ctx.need(0, 'id')
  await data(ctx.api.DELETE('/grants/{grantId}', { params: path('grantId', grantId) }))
  ctx.out({ id: grantId, ended: true }, () => `${grantId}: ended; nothing more is delivered under it\n`)
  return 0
}

async function sourceAction(ctx: Ctx, action: 'pause' | 'resume' | 'stop' | 'start'): Promise<number> {
  const s = await data(ctx.api.PUT(`/sources/{sourceId}/${action}`, { params: path('sourceId', ctx.need(0, 'id')) }))
  ctx.out(s, () => `${s.id} (${s.name}): desired state ${s.desiredState}; the worker applies it within seconds\n`)
  return 0
}

async function connectorAction(ctx: Ctx, action: 'pause' | 'resume'): Promise<number> {
  const c = await data(
    ctx.api.PUT(`/connectors/{connectorId}/${action}`, { params: path('connectorId', ctx.need(0, 'id')) }),
  )
  ctx.out(c, () => `${c.id}: desired state ${c.desiredState}\n`)
  return 0
}

const FROM_FILE = (schema: string, note = '') =>
  `the API's request JSON, ${schema} of GET /v1/openapi.json (- reads stdin; ` +
  `flags given too replace its fields)${note ? `: ${note}` : ''}`

/** Every API command and its subcommands; the first subcommand is the default (`distributary grants` lists). */
export const SUBS: Record<string, Record<string, Sub>> = {
  partners: {
    list: {
      flags: { kind: 'list this kind of organization instead (default partner)' },
      help: 'partner organizations',
      run: (ctx) => listOrganizations(ctx, ctx.flags.kind ?? 'partner'),
    },
    'kafka-credentials': {
      args: '<partner-id>',
      flags: {
        issue:
          "issue the partner's SCRAM credentials, or rotate them (the password is shown " +
          'once; an old one stops working at once)',
        revoke: 'revoke them: the Kafka user and its ACLs are removed',
      },
      help: "the partner's Kafka connection settings for its kafka-topic subscriptions (docs/partner-topics.md)",
      run: async (ctx) => {
        const organizationId = ctx.need(0, 'partner-id')
        const params = path('organizationId', organizationId)
        if (ctx.flags.issue && ctx.flags.revoke) throw new UsageError('--issue and --revoke exclude each other')
        if (ctx.flags.revoke) {
          await data(ctx.api.DELETE('/organizations/{organizationId}/kafka-access/credentials', { params }))
          ctx.out({ partnerId: organizationId, revoked: true }, () => `${organizationId}: Kafka credentials revoked\n`)
          return 0
        }
        const issued = ctx.flags.issue
          ? await data(ctx.api.POST('/organizations/{organizationId}/kafka-access/credentials', { params }))
          : null
        const s = await data(ctx.api.GET('/organizations/{organizationId}/kafka-access', { params }))
        ctx.out(issued ? { ...s, password: issued.password, rotated: issued.rotated } : s, () => {
          const lines = [
            `bootstrap.servers=${s.bootstrapServers.join(',')}`,
            `security.protocol=${s.securityProtocol}`,
            `sasl.mechanism=${s.saslMechanism}`,
            `sasl.username=${s.username ?? '(none yet: --issue)'}`,
            ...(issued ? [`sasl.password=${issued.password}`] : []),
            `group.id=${s.consumerGroupPrefix}<your group>`,
            `schema.registry.url=${s.schemaRegistry.url}`,
            ...(issued ? [`basic.auth.user.info=${issued.username}:${issued.password}`] : []),
            ...s.topics.map(
              (t) =>
                `# topic ${t.topic} (subscription ` +
                `${t.subscriptionId}${t.readable ? '' : ', not readable: no accepted grant covers it'})`,
            ),
          ]
          const shownOnce = issued
            ? `# the password is shown only now${issued.rotated ? '; the previous one no longer works' : ''}\n`
            : ''
          return `${lines.join('\n')}\n${shownOnce}`
        })
        return 0
      },
    },
  },
  organizations: {
    list: {
      flags: { kind: 'only this kind' },
      help: 'publishers and partners',
      run: (ctx) => listOrganizations(ctx, ctx.flags.kind),
    },
    show: {
      args: '<id>',
      help: 'one organization with its profile',
      run: (ctx) =>
        printOne(
          ctx,
          data(ctx.api.GET('/organizations/{organizationId}', { params: path('organizationId', ctx.need(0, 'id')) })),
        ),
    },
    create: {
      flags: {
        kind: 'publisher or partner',
        name: 'its display name',
        slug: 'its unique short name (a-z, 0-9, -)',
        'from-file': FROM_FILE('OrganizationCreate', "e.g. with a partner's profile"),
      },
      help: 'create an organization (admin key)',
      run: async (ctx) => {
        const body = requestBody(ctx, { kind: ctx.flags.kind, name: ctx.flags.name, slug: ctx.flags.slug })
        const o = await data(ctx.api.POST('/organizations', { body: body as Schemas['OrganizationCreate'] }))
        ctx.out(o, () => `${o.id}: created ${o.kind} ${o.slug ?? ''} (${o.name})\n`)
        return 0
      },
    },
    update: {
      args: '<id>',
      flags: { name: 'the new display name', 'from-file': FROM_FILE('OrganizationPatch', 'name, profile') },
      help: "change an organization's name or profile",
      run: async (ctx) => {
        const organizationId = ctx.need(0, 'id')
        const body = requestBody(ctx, { name: ctx.flags.name }, true)
        const o = await data(
          ctx.api.PATCH('/organizations/{organizationId}', {
            params: path('organizationId', organizationId),
            body: body as Schemas['OrganizationPatch'],
          }),
        )
        ctx.out(o, () => `${o.id}: updated ${o.kind} ${o.slug ?? ''} (${o.name})\n`)
        return 0
      },
    },
  },
  keys: {
    list: {
      flags: { 'organization-id': "only this organization's keys" },
      help: 'API keys (never their secrets)',
      run: (ctx) => {
        const organizationId = ctx.flags['organization-id']
        return printList(
          ctx,
          allPages((cursor) =>
            data(ctx.api.GET('/api-keys', { params: { query: { limit: PAGE, cursor, organizationId } } })),
          ),
          keyColumns,
        )
      },
    },
    show: {
      args: '<id>',
      help: 'one API key (without its secret)',
      run: (ctx) => printOne(ctx, data(ctx.api.GET('/api-keys/{keyId}', { params: path('keyId', ctx.need(0, 'id')) }))),
    },
    create: {
      flags: {
        scope: 'what the key may do',
        name: 'what the key is for',
        'organization-id': 'its organization (publisher and partner keys, with an admin key)',
        'from-file': FROM_FILE('ApiKeyCreate'),
      },
      help: 'create an API key; the key is shown only now',
      run: async (ctx) => {
        const body = requestBody(ctx, {
          scope: ctx.flags.scope,
          name: ctx.flags.name,
          organizationId: ctx.flags['organization-id'],
        })
        const k = await data(ctx.api.POST('/api-keys', { body: body as Schemas['ApiKeyCreate'] }))
        ctx.out(
          k,
          () =>
            `${k.id}: created ${k.scope} key ` +
            `"${k.name}"${k.organizationId ? ` of ${k.organizationId}` : ''}\nkey: ` +
            `${k.key}\n(shown only now: store it)\n`,
        )
        return 0
      },
    },
    rotate: {
      args: '<id>',
      flags: { 'overlap-seconds': 'how long the old key stays valid (default 86400)' },
      help: 'a new key now, the old one valid for the overlap; the new key is shown only now',
      run: async (ctx) => {
        const keyId = ctx.need(0, 'id')
        const overlap = overlapSeconds(ctx.flags)
        const k = await data(
          ctx.api.POST('/api-keys/{keyId}/rotate', {
            params: path('keyId', keyId),
            body: overlap === undefined ? {} : { overlapSeconds: overlap },
          }),
        )
        ctx.out(k, () => `${k.id}: rotated from ${keyId}\nkey: ${k.key}\n(shown only now: store it)\n`)
        return 0
      },
    },
    revoke: {
      args: '<id>',
      help: 'revoke an API key at once',
      run: async (ctx) => {
        const k = await data(ctx.api.DELETE('/api-keys/{keyId}', { params: path('keyId', ctx.need(0, 'id')) }))
        ctx.out(k, () => `${k.id}: revoked\n`)
        return 0
      },
    },
  },
  grants: {
    list: {
      flags: { 'partner-id': 'only grants to this partner', 'publisher-id': 'only grants of this publisher' },
      help: 'offered and accepted grants',
      run: (ctx) => {
        const query = { limit: PAGE, partnerId: ctx.flags['partner-id'], publisherId: ctx.flags['publisher-id'] }
        return printList(
          ctx,
          allPages((cursor) => data(ctx.api.GET('/grants', { params: { query: { ...query, cursor } } }))),
          grantColumns,
        )
      },
    },
    show: {
      args: '<id>',
      help: 'one grant',
      run: (ctx) => printOne(ctx, showGrant(ctx, ctx.need(0, 'id'))),
    },
    create: {
      flags: {
        'partner-id': 'the partner it is offered to',
        'publisher-id': 'the publisher giving it (with an admin key; a publisher key gives its own)',
        'event-type': 'an event type it covers (repeat, or a,b)',
        fields: 'only these fields of each event type',
        filter: 'only events whose field holds one of the values (repeat for more fields; values are strings)',
        'from-file': FROM_FILE('GrantCreate', 'e.g. other fields or filters per event type'),
      },
      help: 'offer a partner a grant (publisher or admin key); nothing is delivered before the partner accepts it',
      run: async (ctx) => {
        const body = requestBody(ctx, {
          partnerId: ctx.flags['partner-id'],
          publisherId: ctx.flags['publisher-id'],
          entitlements: entitlements(ctx.flags),
        })
        const g = await data(ctx.api.POST('/grants', { body: body as Schemas['GrantCreate'] }))
        ctx.out(
          g,
          () =>
            `${g.id}: offered ${g.entitlements.map((e) => e.eventType).join(', ')} to ` +
            `${g.partnerId} (${g.status}; the partner accepts it with distributary ` +
            `grants accept ${g.id})\n`,
        )
        return 0
      },
    },
    update: {
      args: '<id>',
      flags: {
        'event-type': 'the event types it covers from now on (repeat, or a,b): replaces the entitlements',
        fields: 'only these fields of each event type',
        filter: 'only events whose field holds one of the values (repeat for more fields)',
        'from-file': FROM_FILE('GrantPatch'),
      },
      help: "replace a grant's entitlements; event types it adds wait for the partner to accept again",
      run: async (ctx) => {
        const grantId = ctx.need(0, 'id')
        const body = requestBody(ctx, { entitlements: entitlements(ctx.flags) }, true)
        const g = await data(
          ctx.api.PATCH('/grants/{grantId}', { params: path('grantId', grantId), body: body as Schemas['GrantPatch'] }),
        )
        const pending =
          g.pendingEventTypes.length > 0 ? `; pending the partner's acceptance: ${g.pendingEventTypes.join(', ')}` : ''
        ctx.out(
          g,
          () =>
            `${g.id}: updated (version ${g.version}); delivered: ` +
            `${g.acceptedEventTypes.join(', ') || 'none'}${pending}\n`,
        )
        return 0
      },
    },
    accept: {
      args: '<id>',
      help: 'accept an offered grant (partner key): its event types are delivered from now on',
      run: async (ctx) => {
        // Accept the version read here, so a change the publisher makes meanwhile is not accepted unseen.
        const grantId = ctx.need(0, 'id')
        const read = await showGrant(ctx, grantId)
        const g = await data(
          ctx.api.POST('/grants/{grantId}/accept', {
            params: path('grantId', grantId),
            body: { version: read.version },
          }),
        )
        ctx.out(g, () => `${g.id}: accepted (${g.acceptedEventTypes.join(', ')}) from ${g.publisherId}\n`)
        return 0
      },
    },
    decline: { args: '<id>', help: 'end a grant: decline an offer, or revoke an accepted grant', run: endGrant },
    delete: { args: '<id>', help: 'the same as decline (a publisher revokes its grant)', run: endGrant },
  },
  subscriptions: {
    list: {
      flags: { 'partner-id': "only this partner's" },
      help: 'partner subscriptions',
      run: (ctx) => {
        const partnerId = ctx.flags['partner-id']
        return printList(
          ctx,
          allPages((cursor) =>
            data(ctx.api.GET('/subscriptions', { params: { query: { limit: PAGE, cursor, partnerId } } })),
          ),
          subscriptionColumns,
        )
      },
    },
    show: {
      args: '<id>',
      help: 'one subscription (without its secrets)',
      run: (ctx) =>
        printOne(
          ctx,
          data(ctx.api.GET('/subscriptions/{subscriptionId}', { params: path('subscriptionId', ctx.need(0, 'id')) })),
        ),
    },
    create: {
      flags: {
        'partner-id': 'the partner (with an admin key; a partner key subscribes for itself)',
        name: 'its name (a-z, 0-9, -)',
        'event-type': "an event type it receives (repeat, or a,b), within the partner's grants",
        'webhook-url': 'deliver as signed webhooks to this URL (other sinks: --from-file)',
        fields: 'only these fields',
        filter: 'only events whose field holds one of the values (repeat for more fields; values are strings)',
        'start-from': 'where it starts (default latest)',
        'from-file': FROM_FILE('SubscriptionCreate', 'any sink, a delivery policy, pinned schema versions'),
      },
      help: "create a subscription; a webhook's secret is shown only now",
      run: async (ctx) => {
        const body = requestBody(ctx, {
          partnerId: ctx.flags['partner-id'],
          ...subscriptionFields(ctx.flags),
          startFrom: ctx.flags['start-from'],
        })
        const s = await data(ctx.api.POST('/subscriptions', { body: body as Schemas['SubscriptionCreate'] }))
        const secret = s.webhookSecret ? `webhook secret: ${s.webhookSecret}\n(shown only now: store it)\n` : ''
        ctx.out(
          s,
          () =>
            `${s.id}: created ${s.name} for ${s.partnerId} (${s.eventTypes.join(', ')}) ` +
            `→ ${String(s.sink.type)}${s.sink.url ? ` ${String(s.sink.url)}` : ''}\n${secret}`,
        )
        return 0
      },
    },
    update: {
      args: '<id>',
      flags: {
        name: 'a new name',
        'event-type': 'the event types it receives from now on (repeat, or a,b)',
        'webhook-url': 'deliver as signed webhooks to this URL from now on',
        fields: 'only these fields',
        filter: 'only events whose field holds one of the values (repeat for more fields)',
        'from-file': FROM_FILE('SubscriptionPatch'),
      },
      help: 'change a subscription (still within the grants)',
      run: async (ctx) => {
        const subscriptionId = ctx.need(0, 'id')
        const body = requestBody(ctx, subscriptionFields(ctx.flags), true)
        const s = await data(
          ctx.api.PATCH('/subscriptions/{subscriptionId}', {
            params: path('subscriptionId', subscriptionId),
            body: body as Schemas['SubscriptionPatch'],
          }),
        )
        ctx.out(
          s,
          () =>
            `${s.id}: updated ${s.name} (${s.eventTypes.join(', ')}) → ` +
            `${String(s.sink.type)}${s.sink.url ? ` ${String(s.sink.url)}` : ''}\n`,
        )
        return 0
      },
    },
    delete: {
      args: '<id>',
      help: 'delete a subscription and its connector',
      run: async (ctx) => {
        const subscriptionId = ctx.need(0, 'id')
        await data(
          ctx.api.DELETE('/subscriptions/{subscriptionId}', { params: path('subscriptionId', subscriptionId) }),
        )
        ctx.out({ id: subscriptionId, deleted: true }, () => `${subscriptionId}: deleted, with its connector\n`)
        return 0
      },
    },
  },
  connectors: {
    list: {
      help: "each subscription's connector: desired state, state, lag, worker, last error",
      run: (ctx) =>
        printList(
          ctx,
          allPages((cursor) => data(ctx.api.GET('/connectors', { params: { query: { limit: PAGE, cursor } } }))),
          connectorColumns,
        ),
    },
    status: {
      args: '<id>',
      help: "a connector's status",
      run: async (ctx) => {
        const id = ctx.need(0, 'id')
        const c = await data(ctx.api.GET('/connectors/{connectorId}/status', { params: path('connectorId', id) }))
        // GET .../status answers the status itself (state, lag, ...), without the connector's id
        const row = { id, ...c }
        ctx.out(c, () =>
          renderTable(
            [row],
            [
              col('ID', 'id'),
              col('DESIRED', 'desiredState'),
              col('STATE', 'state'),
              col('LAG', 'lag'),
              col('WORKER', 'workerId'),
              col('LAST ERROR', 'lastError.message'),
              col('SNAPSHOT', 'snapshot.phase'),
              col('DONE', 'snapshot.done'),
              col('TOTAL', 'snapshot.total'),
            ],
          ),
        )
        return 0
      },
    },
    pause: { args: '<id>', help: 'stop delivering, keep the position', run: (ctx) => connectorAction(ctx, 'pause') },
    resume: {
      args: '<id>',
      help: 'deliver again from the kept position',
      run: (ctx) => connectorAction(ctx, 'resume'),
    },
    replay: {
      args: '<id>',
      flags: {
        from: "where to start again (snapshot: each key's latest record, then live)",
        follow: 'a progress display until the connector caught up',
      },
      help: 'deliver again from a time, the start or the end of the topics, or a snapshot',
      run: async (ctx) => {
        const id = ctx.need(0, 'id')
        const from = ctx.flags.from ?? ctx.args[1]
        if (!from) throw new UsageError('connectors replay: --from <ISO time|earliest|latest|snapshot> is required')
        let body: Schemas['OffsetResetRequest']
        if (from === 'earliest' || from === 'latest' || from === 'snapshot') body = { to: from }
        else {
          const t = Date.parse(from)
          if (Number.isNaN(t))
            throw new UsageError(`connectors replay: --from "${from}" is not an ISO time, earliest, latest or snapshot`)
          body = { to: 'timestamp', timestamp: new Date(t).toISOString() }
        }
        const c = await data(
          ctx.api.POST('/connectors/{connectorId}/offsets/reset', { params: path('connectorId', id), body }),
        )
        ctx.out(c, () => `${c.id}: replay from ${from} requested; the worker applies it within seconds\n`)
        if (ctx.flags.follow) return followReplay(ctx.api, c.id, String(c.offsetReset?.id))
        return 0
      },
    },
  },
  dlq: {
    list: {
      args: '<subscriptionId>',
      help: "a subscription's dead letters",
      run: (ctx) => {
        const subscriptionId = ctx.need(0, 'subscriptionId')
        return printList(
          ctx,
          allPages((cursor) =>
            data(
              ctx.api.GET('/subscriptions/{subscriptionId}/dead-letters', {
                params: { ...path('subscriptionId', subscriptionId), query: { limit: PAGE, cursor } },
              }),
            ),
          ),
          deadLetterColumns,
        )
      },
    },
    retry: {
      args: '<subscriptionId> [eventId]',
      help: 'deliver one event again, or every dead letter',
      run: async (ctx) => {
        const subscriptionId = ctx.need(0, 'subscriptionId')
        const eventId = ctx.args[1]
        const r = eventId
          ? await data(
              ctx.api.POST('/subscriptions/{subscriptionId}/deliveries/{eventId}/retry', {
                params: { path: { subscriptionId, eventId } },
              }),
            )
          : await data(
              ctx.api.POST('/subscriptions/{subscriptionId}/dead-letters/retry', {
                params: path('subscriptionId', subscriptionId),
              }),
            )
        ctx.out(
          r,
          () => `retry requested for ${eventId ? `event ${eventId}` : 'every dead letter'} of ${subscriptionId}\n`,
        )
        return 0
      },
    },
  },
  sources: {
    list: {
      help: 'source connectors (csv-drop, mongodb)',
      run: (ctx) =>
        printList(
          ctx,
          allPages((cursor) => data(ctx.api.GET('/sources', { params: { query: { limit: PAGE, cursor } } }))),
          sourceColumns,
        ),
    },
    status: {
      args: '<id>',
      flags: { follow: "a CSV import's progress (bytes, rate, ETA) until it is done" },
      help: "a source's status",
      run: async (ctx) => {
        const id = ctx.need(0, 'id')
        const s = await data(ctx.api.GET('/sources/{sourceId}/status', { params: path('sourceId', id) }))
        ctx.out(s, () =>
          renderTable(
            [s],
            [
              col('ID', 'id'),
              col('NAME', 'name'),
              col('DESIRED', 'desiredState'),
              col('STATE', 'state'),
              col('PRODUCED', 'counts.produced'),
              col('POSITION', 'position'),
              col('WORKER', 'workerId'),
              col('LAST ERROR', 'lastError.message'),
            ],
          ),
        )
        if (ctx.flags.follow) return followImport(ctx.api, id)
        return 0
      },
    },
    pause: { args: '<id>', help: 'stop producing, keep the position', run: (ctx) => sourceAction(ctx, 'pause') },
    resume: { args: '<id>', help: 'produce again from the kept position', run: (ctx) => sourceAction(ctx, 'resume') },
    stop: { args: '<id>', help: 'stop and release its resources', run: (ctx) => sourceAction(ctx, 'stop') },
    start: { args: '<id>', help: 'start a stopped source', run: (ctx) => sourceAction(ctx, 'start') },
  },
}

/** What the API commands say of themselves in `distributary --help`: one line each. */
