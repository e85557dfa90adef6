/**
 * The API commands of organizations and their relationships: partners, organizations, API keys and
 * grants (api-subcommands.ts puts every command together).
 */
import { data, type Schemas } from '../client/index.ts'
import {
  col,
  entitlements,
  listCommand,
  path,
  printList,
  requestBody,
  rotateCommand,
  showCommand,
  updateCommand,
  UsageError,
  FROM_FILE,
  type Ctx,
  type Sub,
} from './api-args.ts'

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
  return printList(ctx, orgColumns, { kind }, (query) => ctx.api.GET('/organizations', { params: { query } }))
}

async function endGrant(ctx: Ctx): Promise<number> {
  const grantId = ctx.need(0, 'id')
  await data(ctx.api.DELETE('/grants/{grantId}', { params: path('grantId', grantId) }))
  ctx.out({ id: grantId, ended: true }, () => `${grantId}: ended; nothing more is delivered under it\n`)
  return 0
}

export const ORGANIZATION_SUBS: Record<string, Record<string, Sub>> = {
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
    show: showCommand('one organization with its profile', '/organizations/{organizationId}'),
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
    update: updateCommand<Schemas['Organization']>(
      "change an organization's name or profile",
      '/organizations/{organizationId}',
      { name: 'the new display name', 'from-file': FROM_FILE('OrganizationPatch', 'name, profile') },
      (flags) => ({ name: flags.name }),
      (o) => `${o.id}: updated ${o.kind} ${o.slug ?? ''} (${o.name})\n`,
    ),
  },
  keys: {
    list: listCommand('API keys (never their secrets)', keyColumns, '/api-keys', {
      organizationId: "only this organization's keys",
    }),
    show: showCommand('one API key (without its secret)', '/api-keys/{keyId}'),
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
    rotate: rotateCommand<Schemas['ApiKeyCreated']>(
      'a new key now, the old one valid for the overlap; the new key is shown only now',
      'how long the old key stays valid (default 86400)',
      '/api-keys/{keyId}/rotate',
      (k, keyId) => `${k.id}: rotated from ${keyId}\nkey: ${k.key}\n(shown only now: store it)\n`,
    ),
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
    list: listCommand('offered and accepted grants', grantColumns, '/grants', {
      partnerId: 'only grants to this partner',
      publisherId: 'only grants of this publisher',
    }),
    show: showCommand('one grant', '/grants/{grantId}'),
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
    update: updateCommand<Schemas['Grant']>(
      "replace a grant's entitlements; event types it adds wait for the partner to accept again",
      '/grants/{grantId}',
      {
        'event-type': 'the event types it covers from now on (repeat, or a,b): replaces the entitlements',
        fields: 'only these fields of each event type',
        filter: 'only events whose field holds one of the values (repeat for more fields)',
        'from-file': FROM_FILE('GrantPatch'),
      },
      (flags) => ({ entitlements: entitlements(flags) }),
      (g) => {
        const delivered = g.acceptedEventTypes.join(', ') || 'none'
        const pending =
          g.pendingEventTypes.length > 0 ? `; pending the partner's acceptance: ${g.pendingEventTypes.join(', ')}` : ''
        return `${g.id}: updated (version ${g.version}); delivered: ${delivered}${pending}\n`
      },
    ),
    accept: {
      args: '<id>',
      help: 'accept an offered grant (partner key): its event types are delivered from now on',
      run: async (ctx) => {
        // Accept the version read here, so a change the publisher makes meanwhile is not accepted unseen.
        const grantId = ctx.need(0, 'id')
        const read = await data(ctx.api.GET('/grants/{grantId}', { params: path('grantId', grantId) }))
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
}
