/**
 * The commands over the management API, for operators at a terminal: readable tables and lines by
 * default, the API's JSON with --json. They talk through the typed client (client/index.ts), so a
 * request the API's contract does not allow does not compile.
 *
 * Creates and updates take flags for the common fields, or `--from-file <file|->` with exactly the
 * API's request JSON (the schemas of GET /v1/openapi.json; `-` reads stdin); flags given with a file
 * replace its fields. The API validates either: its problem is printed as one line naming the field
 * at fault, exit 1. A command line that is wrong before any request (an unknown subcommand, a flag
 * the subcommand does not take, an unreadable file) is one line and exit 2.
 */
import fs from 'node:fs'
import { allPages, ApiProblem, ApiUnreachable, createManagementClient, data, type ManagementClient, type Schemas } from '../client/index.ts'
import { sleep } from '../common/timers.ts'
import type { AppConfig } from '../config/index.ts'
import { createProgress } from './progress.ts'

/** The options of the API commands, for parseArgs (cli/main.ts); none has a default, so undefined is "not given". */
export const API_OPTIONS = {
  kind: { type: 'string' },
  from: { type: 'string' },
  follow: { type: 'boolean' },
  'from-file': { type: 'string' },
  name: { type: 'string' },
  slug: { type: 'string' },
  scope: { type: 'string' },
  'organization-id': { type: 'string' },
  'publisher-id': { type: 'string' },
  'partner-id': { type: 'string' },
  'event-type': { type: 'string', multiple: true },
  fields: { type: 'string' },
  filter: { type: 'string', multiple: true },
  'webhook-url': { type: 'string' },
  'start-from': { type: 'string' },
  'overlap-seconds': { type: 'string' },
  issue: { type: 'boolean' },
  revoke: { type: 'boolean' },
} as const

type OptionName = keyof typeof API_OPTIONS
type OptionValue<O> = O extends { type: 'boolean' } ? boolean : O extends { multiple: true } ? string[] : string
export type ApiCommandFlags = { json: boolean } & { [K in OptionName]?: OptionValue<(typeof API_OPTIONS)[K]> | undefined }

/** How each option's value reads in the help. */
const VALUE: Record<OptionName, string> = {
  kind: 'publisher|partner',
  from: 'ISO time|earliest|latest|snapshot',
  follow: '',
  'from-file': 'file|-',
  name: 'name',
  slug: 'slug',
  scope: 'admin|publisher|partner',
  'organization-id': 'org id',
  'publisher-id': 'org id',
  'partner-id': 'org id',
  'event-type': 'type',
  fields: 'field,field...',
  filter: 'field=value,value...',
  'webhook-url': 'url',
  'start-from': 'latest|earliest|snapshot',
  'overlap-seconds': 'seconds',
  issue: '',
  revoke: '',
}

/** One subcommand: its arguments, the options it takes (with what each means there), what it does. */
interface Sub {
  args?: string
  flags?: Partial<Record<OptionName, string>>
  help: string
  run(ctx: Ctx): Promise<number>
}

interface Ctx {
  api: ManagementClient
  command: string
  sub: string
  spec: Sub
  /** Positional arguments after the subcommand. */
  args: string[]
  flags: ApiCommandFlags
  /** Prints `value` as the API's JSON with --json, else what `human` gives. */
  out(value: unknown, human: () => string): void
  /** The n-th argument (`<what>` in the help), or a usage error. */
  need(n: number, what: string): string
}

interface Column {
  title: string
  get(row: Record<string, unknown>): unknown
}

class UsageError extends Error {}

export function renderTable(rows: Array<Record<string, unknown>>, columns: Column[]): string {
  const cells = rows.map((r) => columns.map((c) => {
    const v = c.get(r)
    return v === null || v === undefined ? '-' : v instanceof Object ? JSON.stringify(v) : String(v)
  }))
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)))
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(columns.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n'
}

const col = (title: string, key: string): Column => ({ title, get: (r) => key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], r) })

const PAGE = 200
const path = <K extends string>(name: K, value: string) => ({ path: { [name]: value } as Record<K, string> })

// ---- request bodies from flags and --from-file ----------------------------------------------------

/** The --from-file JSON object (`-`: stdin), or {} without the flag. */
function fileBody(flags: ApiCommandFlags): Record<string, unknown> {
  const file = flags['from-file']
  if (file === undefined) return {}
  let text: string
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (err) {
    throw new UsageError(`--from-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`--from-file ${file}: not JSON (${(err as Error).message})`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`--from-file ${file}: the request must be a JSON object`)
  return parsed as Record<string, unknown>
}

/** The file's JSON with each field a flag gives set over it (undefined: not given); an update must change something. */
function requestBody(ctx: Ctx, fromFlags: Record<string, unknown>, update = false): Record<string, unknown> {
  const body = fileBody(ctx.flags)
  for (const [k, v] of Object.entries(fromFlags)) if (v !== undefined) body[k] = v
  if (update && Object.keys(body).length === 0) {
    const flags = Object.keys(ctx.spec.flags ?? {}).map((f) => `--${f}`)
    throw new UsageError(`${ctx.command} ${ctx.sub}: nothing to change (give ${flags.slice(0, -1).join(', ')} or ${flags.at(-1)})`)
  }
  return body
}

/** `a,b, c` → ['a', 'b', 'c']; several occurrences of a repeatable flag add up. */
const list = (v: string | string[] | undefined): string[] | undefined => {
  if (v === undefined) return undefined
  const items = (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '')
  return items.length > 0 ? items : undefined
}

/** `--filter region=EU,US` (repeatable) → the API's row filter { region: { in: ['EU', 'US'] } }; values are strings. */
function rowFilter(flags: ApiCommandFlags): Schemas['RowFilter'] | undefined {
  if (flags.filter === undefined) return undefined
  const filter: Schemas['RowFilter'] = {}
  for (const f of flags.filter) {
    const eq = f.indexOf('=')
    const values = list(f.slice(eq + 1))
    if (eq < 1 || !values) throw new UsageError(`--filter "${f}": expected <field>=<value>[,<value>...]`)
    filter[f.slice(0, eq)] = { in: values }
  }
  return filter
}

/** --event-type (each with --fields and --filter) → a grant's entitlements. */
function entitlements(flags: ApiCommandFlags): Schemas['Entitlement'][] | undefined {
  const types = list(flags['event-type'])
  const fields = list(flags.fields)
  const filter = rowFilter(flags)
  return types?.map((eventType) => ({ eventType, ...(filter ? { filter } : {}), ...(fields ? { fields } : {}) }))
}

/** The subscription fields the flags give. */
function subscriptionFields(flags: ApiCommandFlags): Record<string, unknown> {
  return {
    name: flags.name,
    eventTypes: list(flags['event-type']),
    fields: list(flags.fields),
    filter: rowFilter(flags),
    sink: flags['webhook-url'] === undefined ? undefined : { type: 'webhook', url: flags['webhook-url'] },
  }
}

function overlapSeconds(flags: ApiCommandFlags): number | undefined {
  const v = flags['overlap-seconds']
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v)) throw new UsageError(`--overlap-seconds must be a whole number of seconds (got "${v}")`)
  return Number(v)
}

// ---- the commands -------------------------------------------------------------------------------

const orgColumns = [col('ID', 'id'), col('SLUG', 'slug'), col('NAME', 'name'), col('KIND', 'kind'), col('CREATED', 'createdAt')]
const grantColumns = [col('ID', 'id'), col('PUBLISHER', 'publisherId'), col('PARTNER', 'partnerId'), col('STATUS', 'status'), col('ACCEPTED', 'acceptedEventTypes'), col('PENDING', 'pendingEventTypes')]
const subscriptionColumns = [col('ID', 'id'), col('PARTNER', 'partnerId'), col('NAME', 'name'), col('EVENT TYPES', 'eventTypes'), col('SINK', 'sink.type'), col('URL', 'sink.url')]
const connectorColumns = [col('ID', 'id'), col('DESIRED', 'desiredState'), col('STATE', 'status.state'), col('LAG', 'status.lag'), col('WORKER', 'status.workerId'), col('LAST ERROR', 'status.lastError.message')]
const deadLetterColumns = [col('EVENT', 'eventId'), col('TYPE', 'eventType'), col('KEY', 'key'), col('STATUS', 'status'), col('ATTEMPTS', 'attemptCount'), col('LAST ERROR', 'lastError')]
const sourceColumns = [col('ID', 'id'), col('NAME', 'name'), col('KIND', 'kind'), col('PUBLISHER', 'publisherId'), col('DESIRED', 'desiredState'), col('STATE', 'status.state'), col('PRODUCED', 'status.counts.produced'), col('LAST ERROR', 'status.lastError.message')]
const keyColumns = [col('ID', 'id'), col('PREFIX', 'prefix'), col('SCOPE', 'scope'), col('ORGANIZATION', 'organizationId'), col('NAME', 'name'), col('EXPIRES', 'expiresAt'), col('REVOKED', 'revokedAt'), col('LAST USED', 'lastUsedAt')]

/** A list: a table of `columns` (the API's JSON with --json). */
async function printList(ctx: Ctx, rows: Promise<Array<Record<string, unknown>>>, columns: Column[]): Promise<number> {
  const all = await rows
  ctx.out(all, () => renderTable(all, columns))
  return 0
}

/** One resource (a `show`): its JSON, with or without --json. */
async function printOne(ctx: Ctx, item: Promise<unknown>): Promise<number> {
  const value = await item
  ctx.out(value, () => JSON.stringify(value, null, 2) + '\n')
  return 0
}

async function listOrganizations(ctx: Ctx, kind: string | undefined): Promise<number> {
  if (kind !== undefined && kind !== 'partner' && kind !== 'publisher') throw new UsageError(`--kind must be partner or publisher (got "${kind}")`)
  return printList(ctx, allPages((cursor) => data(ctx.api.GET('/organizations', { params: { query: { limit: PAGE, cursor, kind } } }))), orgColumns)
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
  const c = await data(ctx.api.PUT(`/connectors/{connectorId}/${action}`, { params: path('connectorId', ctx.need(0, 'id')) }))
  ctx.out(c, () => `${c.id}: desired state ${c.desiredState}\n`)
  return 0
}

const FROM_FILE = (schema: string, note = '') =>
  `the API's request JSON, ${schema} of GET /v1/openapi.json (- reads stdin; flags given too replace its fields)${note ? `: ${note}` : ''}`

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
        issue: 'issue the partner\'s SCRAM credentials, or rotate them (the password is shown once; an old one stops working at once)',
        revoke: 'revoke them: the Kafka user and its ACLs are removed',
      },
      help: 'the partner\'s Kafka connection settings for its kafka-topic subscriptions (docs/partner-topics.md)',
      run: async (ctx) => {
        const organizationId = ctx.need(0, 'partner-id')
        const params = path('organizationId', organizationId)
        if (ctx.flags.issue && ctx.flags.revoke) throw new UsageError('--issue and --revoke exclude each other')
        if (ctx.flags.revoke) {
          await data(ctx.api.DELETE('/organizations/{organizationId}/kafka-access/credentials', { params }))
          ctx.out({ partnerId: organizationId, revoked: true }, () => `${organizationId}: Kafka credentials revoked\n`)
          return 0
        }
        const issued = ctx.flags.issue ? await data(ctx.api.POST('/organizations/{organizationId}/kafka-access/credentials', { params })) : null
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
            ...s.topics.map((t) => `# topic ${t.topic} (subscription ${t.subscriptionId}${t.readable ? '' : ', not readable: no accepted grant covers it'})`),
          ]
          return `${lines.join('\n')}\n${issued ? `# the password is shown only now${issued.rotated ? '; the previous one no longer works' : ''}\n` : ''}`
        })
        return 0
      },
    },
  },
  organizations: {
    list: { flags: { kind: 'only this kind' }, help: 'publishers and partners', run: (ctx) => listOrganizations(ctx, ctx.flags.kind) },
    show: {
      args: '<id>',
      help: 'one organization with its profile',
      run: (ctx) => printOne(ctx, data(ctx.api.GET('/organizations/{organizationId}', { params: path('organizationId', ctx.need(0, 'id')) }))),
    },
    create: {
      flags: { kind: 'publisher or partner', name: 'its display name', slug: 'its unique short name (a-z, 0-9, -)', 'from-file': FROM_FILE('OrganizationCreate', 'e.g. with a partner\'s profile') },
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
      help: 'change an organization\'s name or profile',
      run: async (ctx) => {
        const organizationId = ctx.need(0, 'id')
        const body = requestBody(ctx, { name: ctx.flags.name }, true)
        const o = await data(ctx.api.PATCH('/organizations/{organizationId}', { params: path('organizationId', organizationId), body: body as Schemas['OrganizationPatch'] }))
        ctx.out(o, () => `${o.id}: updated ${o.kind} ${o.slug ?? ''} (${o.name})\n`)
        return 0
      },
    },
  },
  keys: {
    list: {
      flags: { 'organization-id': 'only this organization\'s keys' },
      help: 'API keys (never their secrets)',
      run: (ctx) => {
        const organizationId = ctx.flags['organization-id']
        return printList(ctx, allPages((cursor) => data(ctx.api.GET('/api-keys', { params: { query: { limit: PAGE, cursor, organizationId } } }))), keyColumns)
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
        const body = requestBody(ctx, { scope: ctx.flags.scope, name: ctx.flags.name, organizationId: ctx.flags['organization-id'] })
        const k = await data(ctx.api.POST('/api-keys', { body: body as Schemas['ApiKeyCreate'] }))
        ctx.out(k, () => `${k.id}: created ${k.scope} key "${k.name}"${k.organizationId ? ` of ${k.organizationId}` : ''}\nkey: ${k.key}\n(shown only now: store it)\n`)
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
        const k = await data(ctx.api.POST('/api-keys/{keyId}/rotate', { params: path('keyId', keyId), body: overlap === undefined ? {} : { overlapSeconds: overlap } }))
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
        return printList(ctx, allPages((cursor) => data(ctx.api.GET('/grants', { params: { query: { ...query, cursor } } }))), grantColumns)
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
        const body = requestBody(ctx, { partnerId: ctx.flags['partner-id'], publisherId: ctx.flags['publisher-id'], entitlements: entitlements(ctx.flags) })
        const g = await data(ctx.api.POST('/grants', { body: body as Schemas['GrantCreate'] }))
        ctx.out(g, () => `${g.id}: offered ${g.entitlements.map((e) => e.eventType).join(', ')} to ${g.partnerId} (${g.status}; the partner accepts it with distributary grants accept ${g.id})\n`)
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
      help: 'replace a grant\'s entitlements; event types it adds wait for the partner to accept again',
      run: async (ctx) => {
        const grantId = ctx.need(0, 'id')
        const body = requestBody(ctx, { entitlements: entitlements(ctx.flags) }, true)
        const g = await data(ctx.api.PATCH('/grants/{grantId}', { params: path('grantId', grantId), body: body as Schemas['GrantPatch'] }))
        const pending = g.pendingEventTypes.length > 0 ? `; pending the partner's acceptance: ${g.pendingEventTypes.join(', ')}` : ''
        ctx.out(g, () => `${g.id}: updated (version ${g.version}); delivered: ${g.acceptedEventTypes.join(', ') || 'none'}${pending}\n`)
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
        const g = await data(ctx.api.POST('/grants/{grantId}/accept', { params: path('grantId', grantId), body: { version: read.version } }))
        ctx.out(g, () => `${g.id}: accepted (${g.acceptedEventTypes.join(', ')}) from ${g.publisherId}\n`)
        return 0
      },
    },
    decline: { args: '<id>', help: 'end a grant: decline an offer, or revoke an accepted grant', run: endGrant },
    delete: { args: '<id>', help: 'the same as decline (a publisher revokes its grant)', run: endGrant },
  },
  subscriptions: {
    list: {
      flags: { 'partner-id': 'only this partner\'s' },
      help: 'partner subscriptions',
      run: (ctx) => {
        const partnerId = ctx.flags['partner-id']
        return printList(ctx, allPages((cursor) => data(ctx.api.GET('/subscriptions', { params: { query: { limit: PAGE, cursor, partnerId } } }))), subscriptionColumns)
      },
    },
    show: {
      args: '<id>',
      help: 'one subscription (without its secrets)',
      run: (ctx) => printOne(ctx, data(ctx.api.GET('/subscriptions/{subscriptionId}', { params: path('subscriptionId', ctx.need(0, 'id')) }))),
    },
    create: {
      flags: {
        'partner-id': 'the partner (with an admin key; a partner key subscribes for itself)',
        name: 'its name (a-z, 0-9, -)',
        'event-type': 'an event type it receives (repeat, or a,b), within the partner\'s grants',
        'webhook-url': 'deliver as signed webhooks to this URL (other sinks: --from-file)',
        fields: 'only these fields',
        filter: 'only events whose field holds one of the values (repeat for more fields; values are strings)',
        'start-from': 'where it starts (default latest)',
        'from-file': FROM_FILE('SubscriptionCreate', 'any sink, a delivery policy, pinned schema versions'),
      },
      help: 'create a subscription; a webhook\'s secret is shown only now',
      run: async (ctx) => {
        const body = requestBody(ctx, { partnerId: ctx.flags['partner-id'], ...subscriptionFields(ctx.flags), startFrom: ctx.flags['start-from'] })
        const s = await data(ctx.api.POST('/subscriptions', { body: body as Schemas['SubscriptionCreate'] }))
        const secret = s.webhookSecret ? `webhook secret: ${s.webhookSecret}\n(shown only now: store it)\n` : ''
        ctx.out(s, () => `${s.id}: created ${s.name} for ${s.partnerId} (${s.eventTypes.join(', ')}) → ${String(s.sink.type)}${s.sink.url ? ` ${String(s.sink.url)}` : ''}\n${secret}`)
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
        const s = await data(ctx.api.PATCH('/subscriptions/{subscriptionId}', { params: path('subscriptionId', subscriptionId), body: body as Schemas['SubscriptionPatch'] }))
        ctx.out(s, () => `${s.id}: updated ${s.name} (${s.eventTypes.join(', ')}) → ${String(s.sink.type)}${s.sink.url ? ` ${String(s.sink.url)}` : ''}\n`)
        return 0
      },
    },
    delete: {
      args: '<id>',
      help: 'delete a subscription and its connector',
      run: async (ctx) => {
        const subscriptionId = ctx.need(0, 'id')
        await data(ctx.api.DELETE('/subscriptions/{subscriptionId}', { params: path('subscriptionId', subscriptionId) }))
        ctx.out({ id: subscriptionId, deleted: true }, () => `${subscriptionId}: deleted, with its connector\n`)
        return 0
      },
    },
  },
  connectors: {
    list: {
      help: 'each subscription\'s connector: desired state, state, lag, worker, last error',
      run: (ctx) => printList(ctx, allPages((cursor) => data(ctx.api.GET('/connectors', { params: { query: { limit: PAGE, cursor } } }))), connectorColumns),
    },
    status: {
      args: '<id>',
      help: 'a connector\'s status',
      run: async (ctx) => {
        const id = ctx.need(0, 'id')
        const c = await data(ctx.api.GET('/connectors/{connectorId}/status', { params: path('connectorId', id) }))
        // GET .../status answers the status itself (state, lag, ...), without the connector's id
        const row = { id, ...c }
        ctx.out(c, () => renderTable([row], [col('ID', 'id'), col('DESIRED', 'desiredState'), col('STATE', 'state'), col('LAG', 'lag'), col('WORKER', 'workerId'), col('LAST ERROR', 'lastError.message'), col('SNAPSHOT', 'snapshot.phase'), col('DONE', 'snapshot.done'), col('TOTAL', 'snapshot.total')]))
        return 0
      },
    },
    pause: { args: '<id>', help: 'stop delivering, keep the position', run: (ctx) => connectorAction(ctx, 'pause') },
    resume: { args: '<id>', help: 'deliver again from the kept position', run: (ctx) => connectorAction(ctx, 'resume') },
    replay: {
      args: '<id>',
      flags: { from: 'where to start again (snapshot: each key\'s latest record, then live)', follow: 'a progress display until the connector caught up' },
      help: 'deliver again from a time, the start or the end of the topics, or a snapshot',
      run: async (ctx) => {
        const id = ctx.need(0, 'id')
        const from = ctx.flags.from ?? ctx.args[1]
        if (!from) throw new UsageError('connectors replay: --from <ISO time|earliest|latest|snapshot> is required')
        let body: Schemas['OffsetResetRequest']
        if (from === 'earliest' || from === 'latest' || from === 'snapshot') body = { to: from }
        else {
          const t = Date.parse(from)
          if (Number.isNaN(t)) throw new UsageError(`connectors replay: --from "${from}" is not an ISO time, earliest, latest or snapshot`)
          body = { to: 'timestamp', timestamp: new Date(t).toISOString() }
        }
        const c = await data(ctx.api.POST('/connectors/{connectorId}/offsets/reset', { params: path('connectorId', id), body }))
        ctx.out(c, () => `${c.id}: replay from ${from} requested; the worker applies it within seconds\n`)
        if (ctx.flags.follow) return followReplay(ctx.api, c.id, String(c.offsetReset?.id))
        return 0
      },
    },
  },
  dlq: {
    list: {
      args: '<subscriptionId>',
      help: 'a subscription\'s dead letters',
      run: (ctx) => {
        const subscriptionId = ctx.need(0, 'subscriptionId')
        return printList(ctx, allPages((cursor) => data(ctx.api.GET('/subscriptions/{subscriptionId}/dead-letters', { params: { ...path('subscriptionId', subscriptionId), query: { limit: PAGE, cursor } } }))), deadLetterColumns)
      },
    },
    retry: {
      args: '<subscriptionId> [eventId]',
      help: 'deliver one event again, or every dead letter',
      run: async (ctx) => {
        const subscriptionId = ctx.need(0, 'subscriptionId')
        const eventId = ctx.args[1]
        const r = eventId
          ? await data(ctx.api.POST('/subscriptions/{subscriptionId}/deliveries/{eventId}/retry', { params: { path: { subscriptionId, eventId } } }))
          : await data(ctx.api.POST('/subscriptions/{subscriptionId}/dead-letters/retry', { params: path('subscriptionId', subscriptionId) }))
        ctx.out(r, () => `retry requested for ${eventId ? `event ${eventId}` : 'every dead letter'} of ${subscriptionId}\n`)
        return 0
      },
    },
  },
  sources: {
    list: {
      help: 'source connectors (csv-drop, mongodb)',
      run: (ctx) => printList(ctx, allPages((cursor) => data(ctx.api.GET('/sources', { params: { query: { limit: PAGE, cursor } } }))), sourceColumns),
    },
    status: {
      args: '<id>',
      flags: { follow: 'a CSV import\'s progress (bytes, rate, ETA) until it is done' },
      help: 'a source\'s status',
      run: async (ctx) => {
        const id = ctx.need(0, 'id')
        const s = await data(ctx.api.GET('/sources/{sourceId}/status', { params: path('sourceId', id) }))
        ctx.out(s, () => renderTable([s], [col('ID', 'id'), col('NAME', 'name'), col('DESIRED', 'desiredState'), col('STATE', 'state'), col('PRODUCED', 'counts.produced'), col('POSITION', 'position'), col('WORKER', 'workerId'), col('LAST ERROR', 'lastError.message')]))
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
export const API_SUMMARY: Record<string, string> = {
  partners: 'partner organizations (--kind publisher: the publishers)',
  organizations: 'publishers and partners',
  keys: 'API keys (a new key is shown once)',
  grants: 'what a publisher lets a partner receive: an offer until the partner accepts it',
  subscriptions: 'a partner\'s subscriptions (sink connectors), within its grants',
  connectors: 'each subscription\'s connector: state, lag, pause and resume, replay',
  dlq: 'a subscription\'s dead letters',
  sources: 'source connectors (csv-drop, mongodb)',
}

/** `--name <value>` as the help shows a flag (a repeatable one with `...` after the brackets in the usage). */
const flagText = (f: string) => `--${f}${API_OPTIONS[f as OptionName].type === 'string' ? ` <${VALUE[f as OptionName]}>` : ''}`

const usageLine = (command: string, name: string, sub: Sub, first: boolean) => {
  const flags = Object.keys(sub.flags ?? {}).map((f) => ` [${flagText(f)}]${'multiple' in API_OPTIONS[f as OptionName] ? '...' : ''}`)
  return `distributary ${command} ${first ? `[${name}]` : name}${sub.args ? ` ${sub.args}` : ''}${flags.join('')} [--json]`
}

/** `distributary <command> --help` of an API command: each subcommand's usage and what it does, then each flag. */
export function apiCommandHelp(command: string): string | undefined {
  const subs = SUBS[command]
  if (!subs) return undefined
  const indent = ' '.repeat(24)
  const entries = Object.entries(subs)
  const lines = entries.map(([name, sub], i) => `${i === 0 ? 'usage:' : '      '} ${usageLine(command, name, sub, i === 0)}\n${indent}${sub.help}`)
  const flagLines = entries.flatMap(([name, sub]) => Object.entries(sub.flags ?? {}).map(([f, text]) => `  ${name} ${flagText(f)}\n${indent}${text}`))
  const env = 'over the management API at DISTRIBUTARY_API_URL (default http://127.0.0.1:8080) with DISTRIBUTARY_API_KEY (default ADMIN_API_KEY)'
  return `${lines.join('\n')}\n\n${API_SUMMARY[command]}, ${env}.\n${flagLines.length ? `\nflags:\n${flagLines.join('\n')}\n` : ''}  --json                the API's JSON instead of a table or a line\n`
}

function baseUrl(config: AppConfig): string {
  if (config.cli.apiUrl !== '') return config.cli.apiUrl.replace(/\/$/, '')
  const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host
  return `http://${host}:${config.http.port}`
}

/** The typed client the CLI talks through: the configured URL and key (DISTRIBUTARY_API_KEY, else ADMIN_API_KEY). */
export function cliClient(config: AppConfig): ManagementClient {
  return createManagementClient({ baseUrl: baseUrl(config), apiKey: config.cli.apiKey !== '' ? config.cli.apiKey : config.management.adminApiKey })
}

/**
 * Runs `distributary <command> [sub] [args]`. `given`: the options the command line named (parseArgs
 * tokens), so one the subcommand does not take is refused instead of silently ignored.
 */
export async function apiCommand(config: AppConfig, command: string, args: string[], flags: ApiCommandFlags, given: ReadonlySet<string> = new Set()): Promise<number> {
  const subs = SUBS[command]!
  const [name = Object.keys(subs)[0]!, ...rest] = args
  try {
    const sub = Object.hasOwn(subs, name) ? subs[name]! : undefined
    if (!sub) {
      process.stderr.write(`distributary: unknown command "${command} ${name}" (${Object.keys(subs).join(', ')}; see distributary ${command} --help)\n`)
      return 2
    }
    const stray = [...given].filter((f) => f !== 'json' && f !== 'help' && !(f in (sub.flags ?? {})))
    if (stray.length > 0) throw new UsageError(`${command} ${name} does not take ${stray.map((f) => `--${f}`).join(', ')}`)
    const ctx: Ctx = {
      api: cliClient(config),
      command,
      sub: name,
      spec: sub,
      args: rest,
      flags,
      out: (value, human) => process.stdout.write(flags.json ? JSON.stringify(value, null, 2) + '\n' : human()),
      need: (n, what) => {
        const v = rest[n]
        if (!v) throw new UsageError(`${command} ${name}: missing <${what}>`)
        return v
      },
    }
    return await sub.run(ctx)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`distributary: ${err.message} (see distributary ${command} --help)\n`)
      return 2
    }
    if (err instanceof ApiProblem) {
      process.stderr.write(`distributary: ${err.message}\n`)
      return 1
    }
    if (err instanceof ApiUnreachable) {
      process.stderr.write(`distributary: ${err.message} (is \`distributary start\` running? DISTRIBUTARY_API_URL)\n`)
      return 1
    }
    throw err
  }
}

/**
 * Follows a replay on stderr until the connector caught up: waits for a worker to apply the reset,
 * then counts the lag down (done = the lag when it was applied - the lag now). Ctrl-C stops following,
 * not the replay. Exit 1 when the connector fails or is stopped meanwhile.
 */
async function followReplay(api: ManagementClient, id: string, resetId: string, pollMs = 1000): Promise<number> {
  const progress = createProgress(`replay ${id}`, { unit: 'events' })
  let total: number | null = null
  for (;;) {
    const s = await data(api.GET('/connectors/{connectorId}/status', { params: path('connectorId', id) }))
    if (s.state === 'failed' || s.state === 'stopped') {
      progress.finish(`connector ${s.state}${s.lastError ? `: ${String(s.lastError.code)} ${String(s.lastError.message)}` : ''}`)
      return 1
    }
    if (s.appliedResetId === resetId && s.lag !== null) {
      total = Math.max(total ?? 0, s.lag)
      progress.update(total - s.lag, total)
      if (s.lag === 0) {
        progress.finish(`caught up: ${total} events replayed`)
        return 0
      }
    } else if (total === null) progress.update(0)
    await sleep(pollMs)
  }
}

/** What a csv-drop source reports as its position (SourceStatusView.position is the plug-in's own). */
interface CsvPosition {
  file?: string | null
  line?: number | null
  byte?: number | null
  size?: number | null
  filesDone?: number
}

/**
 * Follows a CSV drop source's import on stderr: per file, a progress bar over its bytes acked (rate and
 * ETA), the rows produced in the final line. Ends when the source has no file in progress after one
 * (or none to begin with), or stops running; Ctrl-C stops following, not the import.
 */
async function followImport(api: ManagementClient, id: string, pollMs = 1000): Promise<number> {
  let file: string | null = null
  let progress: ReturnType<typeof createProgress> | null = null
  let rowsAtStart = 0
  let seenFile = false
  let doneAtStart: number | null = null
  for (;;) {
    const s = await data(api.GET('/sources/{sourceId}/status', { params: path('sourceId', id) }))
    const pos = (s.position ?? {}) as CsvPosition
    const produced = s.counts.produced ?? 0
    const current = pos.file ?? null
    doneAtStart ??= pos.filesDone ?? 0
    if (current !== file) {
      progress?.finish(`done, ${produced - rowsAtStart} rows produced`)
      progress = null
      file = current
      rowsAtStart = produced
      if (current) {
        seenFile = true
        progress = createProgress(`import ${current}`, { unit: 'bytes', ...(pos.size ? { total: pos.size } : {}) })
      }
    }
    if (progress && pos.byte != null) progress.update(pos.byte, pos.size ?? undefined)
    if (s.state === 'failed' || s.state === 'stopped') {
      progress?.finish(`source ${s.state}${s.lastError ? `: ${String(s.lastError.code)} ${String(s.lastError.message)}` : ''}`)
      return s.state === 'failed' ? 1 : 0
    }
    // A file was imported (followed, or taken and finished between two looks): done. Until then: wait.
    if (!current && (seenFile || (pos.filesDone ?? 0) > doneAtStart)) {
      if (!seenFile) process.stderr.write(`source ${id}: ${(pos.filesDone ?? 0) - doneAtStart} file(s) imported, ${produced} rows produced\n`)
      return 0
    }
    await sleep(pollMs)
  }
}
