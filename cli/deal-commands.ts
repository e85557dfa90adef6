/**
 * `distributary deals ...` and `distributary leads ...` (docs/deals.md): lists, one deal with its
 * history, the decisions of each side, and the lead steps, through the typed client.
 */
import { data, type Schemas } from '../client/index.ts'
import { col, listCommand, path, requestBody, showCommand, UsageError, type Ctx, type Sub } from './api-args.ts'

const dealColumns = [
  col('ID', 'id'),
  col('STATE', 'state'),
  col('PARTNER', 'partnerId'),
  col('PUBLISHER', 'manufacturerId'),
  col('CUSTOMER', 'endCustomer.name'),
  col('DOMAIN', 'endCustomer.domain'),
  col('AMOUNT', 'amount'),
  col('CUR', 'currency'),
  col('CONFLICT', 'conflict'),
  col('PROTECTED UNTIL', 'protectionExpiresAt'),
]
const leadColumns = [
  col('ID', 'id'),
  col('STATE', 'state'),
  col('PARTNER', 'partnerId'),
  col('COMPANY', 'company.name'),
  col('ACCEPT BY', 'acceptBy'),
  col('DEAL', 'dealId'),
]

const FROM_FILE = (schema: string) => `the API's request JSON, ${schema} of GET /v1/openapi.json (- reads stdin)`

type DealActionName = Schemas['DealAction']['action']

async function dealAction(ctx: Ctx, action: DealActionName): Promise<number> {
  const dealId = ctx.need(0, 'id')
  const body = requestBody(ctx, { action, reason: ctx.flags.reason })
  const d = await data(
    ctx.api.POST('/deals/{dealId}/actions', { params: path('dealId', dealId), body: body as Schemas['DealAction'] }),
  )
  ctx.out(
    d,
    () =>
      `${d.id}: ${d.state}${d.conflict ? ' (a conflicting registration exists)' : ''}; ` +
      `next: ${d.allowedActions.join(', ') || 'nothing (final)'}\n`,
  )
  return 0
}

const decision = (action: DealActionName, help: string): Sub => ({
  args: '<id>',
  flags: { reason: 'why (the partner sees it as decisionReason)' },
  help,
  run: (ctx) => dealAction(ctx, action),
})

async function leadAction(ctx: Ctx, action: 'accept' | 'decline' | 'reassign'): Promise<number> {
  const leadId = ctx.need(0, 'id')
  if (action === 'reassign' && ctx.flags['partner-id'] === undefined)
    throw new UsageError('leads reassign: --partner-id is required')
  const body = {
    action,
    ...(ctx.flags.reason !== undefined ? { reason: ctx.flags.reason } : {}),
    ...(ctx.flags['partner-id'] !== undefined ? { partnerId: ctx.flags['partner-id'] } : {}),
  }
  const l = await data(ctx.api.POST('/leads/{leadId}/actions', { params: path('leadId', leadId), body }))
  ctx.out(l, () => `${l.id}: ${l.state} (partner ${l.partnerId})\n`)
  return 0
}

export const DEAL_SUBS: Record<string, Record<string, Sub>> = {
  deals: {
    list: listCommand(
      'deal registrations: a partner its own, a publisher those registered with it',
      dealColumns,
      '/deals',
      {
        state: 'only deals in this state',
        partnerId: "only this partner's",
        manufacturerId: ['publisher-id', 'only those registered with this publisher'],
      },
    ),
    show: showCommand(
      'one deal with the history of its steps (a publisher also sees the registrations it conflicts with)',
      '/deals/{dealId}',
    ),
    register: {
      flags: { 'from-file': FROM_FILE('DealCreate') },
      help: 'register a deal with a publisher (partner key)',
      run: async (ctx) => {
        if (ctx.flags['from-file'] === undefined)
          throw new UsageError('deals register: --from-file is required (a DealCreate)')
        const d = await data(ctx.api.POST('/deals', { body: requestBody(ctx, {}) as Schemas['DealCreate'] }))
        ctx.out(d, () => `${d.id}: ${d.state}${d.conflict ? ' (a conflicting registration exists)' : ''}\n`)
        return 0
      },
    },
    review: decision('review', 'start reviewing it (publisher)'),
    approve: decision('approve', 'approve it: its protection period starts (publisher)'),
    reject: decision('reject', 'reject it (publisher)'),
    return: decision('return', 'return it to the partner to change and resubmit (publisher)'),
    won: decision('won', 'mark it won (publisher)'),
    lost: decision('lost', 'mark it lost (publisher)'),
    cancel: decision('cancel', "withdraw one's own registration (partner)"),
    resubmit: {
      args: '<id>',
      flags: { 'from-file': FROM_FILE('DealAction (its changes)') },
      help: 'submit a returned registration again, with changes from the file (partner)',
      run: (ctx) => dealAction(ctx, 'resubmit'),
    },
  },
  leads: {
    list: listCommand('leads: a publisher its own, a partner those assigned to it', leadColumns, '/leads', {
      state: 'only leads in this state',
    }),
    show: showCommand('one lead with its history', '/leads/{leadId}'),
    create: {
      flags: { 'partner-id': 'the partner to assign it to', 'from-file': FROM_FILE('LeadCreate') },
      help: 'assign a lead to a partner (publisher key); it has until acceptBy (default 48 h) to answer',
      run: async (ctx) => {
        const l = await data(
          ctx.api.POST('/leads', {
            body: requestBody(ctx, { partnerId: ctx.flags['partner-id'] }) as Schemas['LeadCreate'],
          }),
        )
        ctx.out(l, () => `${l.id}: assigned to ${l.partnerId} until ${String(l.acceptBy)}\n`)
        return 0
      },
    },
    accept: { args: '<id>', help: 'accept a lead assigned to you (partner)', run: (ctx) => leadAction(ctx, 'accept') },
    decline: {
      args: '<id>',
      flags: { reason: 'why' },
      help: 'decline it: it goes back to the publisher (partner)',
      run: (ctx) => leadAction(ctx, 'decline'),
    },
    reassign: {
      args: '<id>',
      flags: { 'partner-id': 'the partner to assign it to now' },
      help: 'assign a declined or expired lead again (publisher)',
      run: (ctx) => leadAction(ctx, 'reassign'),
    },
    convert: {
      args: '<id>',
      flags: { 'from-file': FROM_FILE('LeadConvert') },
      help: 'turn an accepted lead into a deal registration linked to it (partner)',
      run: async (ctx) => {
        const r = await data(
          ctx.api.POST('/leads/{leadId}/convert', {
            params: path('leadId', ctx.need(0, 'id')),
            body: requestBody(ctx, {}) as Schemas['LeadConvert'],
          }),
        )
        ctx.out(r, () => `${r.lead.id}: converted into deal ${r.deal.id} (${r.deal.state})\n`)
        return 0
      },
    },
  },
}
