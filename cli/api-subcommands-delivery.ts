/**
 * The API commands of what is delivered and produced: subscriptions, connectors, dead letters and
 * sources (api-subcommands.ts puts every command together).
 */
import { data, type Schemas } from '../client/index.ts'
import {
  col,
  deleteCommand,
  listCommand,
  path,
  printList,
  requestBody,
  showCommand,
  statusCommand,
  updateCommand,
  subscriptionFields,
  UsageError,
  FROM_FILE,
  type Ctx,
  type Sub,
} from './api-args.ts'
import { followImport, followReplay, followTest } from './follow.ts'

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

export const DELIVERY_SUBS: Record<string, Record<string, Sub>> = {
  subscriptions: {
    list: listCommand('partner subscriptions', subscriptionColumns, '/subscriptions', {
      partnerId: "only this partner's",
    }),
    show: showCommand('one subscription (without its secrets)', '/subscriptions/{subscriptionId}'),
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
    update: updateCommand<Schemas['SubscriptionCreated']>(
      'change a subscription (still within the grants)',
      '/subscriptions/{subscriptionId}',
      {
        name: 'a new name',
        'event-type': 'the event types it receives from now on (repeat, or a,b)',
        'webhook-url': 'deliver as signed webhooks to this URL from now on',
        fields: 'only these fields',
        filter: 'only events whose field holds one of the values (repeat for more fields)',
        'from-file': FROM_FILE('SubscriptionPatch'),
      },
      subscriptionFields,
      (s) =>
        `${s.id}: updated ${s.name} (${s.eventTypes.join(', ')}) → ` +
        `${String(s.sink.type)}${s.sink.url ? ` ${String(s.sink.url)}` : ''}\n`,
    ),
    test: {
      args: '<id>',
      flags: {
        'event-type': "the example's event type (one of the subscription's; default: its first)",
        follow: 'wait for the outcome (exit 1 unless delivered)',
      },
      help: 'send a test event: an example, marked as a test, to its sink (also while paused)',
      run: async (ctx) => {
        const subscriptionId = ctx.need(0, 'id')
        const types = ctx.flags['event-type'] ?? []
        if (types.length > 1) throw new UsageError('--event-type: a test event has one event type')
        const r = await data(
          ctx.api.POST('/subscriptions/{subscriptionId}/test', {
            params: path('subscriptionId', subscriptionId),
            // as typed: the API refuses a type it does not know, naming the known ones
            body: types[0] ? { eventType: types[0] as Schemas['TestEventRequest']['eventType'] } : {},
          }),
        )
        if (ctx.flags.follow) return followTest(ctx, subscriptionId, r.id)
        ctx.out(
          r,
          () =>
            `${subscriptionId}: test event ${String(r.eventId)} (${String(r.eventType)}) requested as ${r.id}; ` +
            'its attempts are in the delivery log (--follow waits for them)\n',
        )
        return 0
      },
    },
    delete: deleteCommand(
      'delete a subscription and its connector',
      '/subscriptions/{subscriptionId}',
      'deleted, with its connector',
    ),
  },
  connectors: {
    list: listCommand(
      "each subscription's connector: desired state, state, lag, worker, last error",
      connectorColumns,
      '/connectors',
    ),
    status: statusCommand("a connector's status", '/connectors/{connectorId}/status', [
      col('ID', 'id'),
      col('DESIRED', 'desiredState'),
      col('STATE', 'state'),
      col('LAG', 'lag'),
      col('WORKER', 'workerId'),
      col('LAST ERROR', 'lastError.message'),
      col('SNAPSHOT', 'snapshot.phase'),
      col('DONE', 'snapshot.done'),
      col('TOTAL', 'snapshot.total'),
    ]),
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
        return printList(ctx, deadLetterColumns, {}, (query) =>
          ctx.api.GET('/subscriptions/{subscriptionId}/dead-letters', {
            params: { ...path('subscriptionId', subscriptionId), query },
          }),
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
    list: listCommand('source connectors (csv-drop, mongodb)', sourceColumns, '/sources'),
    status: statusCommand(
      "a source's status",
      '/sources/{sourceId}/status',
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
      { help: "a CSV import's progress (bytes, rate, ETA) until it is done", run: followImport },
    ),
    pause: { args: '<id>', help: 'stop producing, keep the position', run: (ctx) => sourceAction(ctx, 'pause') },
    resume: { args: '<id>', help: 'produce again from the kept position', run: (ctx) => sourceAction(ctx, 'resume') },
    stop: { args: '<id>', help: 'stop and release its resources', run: (ctx) => sourceAction(ctx, 'stop') },
    start: { args: '<id>', help: 'start a stopped source', run: (ctx) => sourceAction(ctx, 'start') },
  },
}
