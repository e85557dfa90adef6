/**
 * The demo's deal-registration scene (docs/deals.md): Northwind registers a deal, Contoso registers
 * the same opportunity (a subdomain of the same customer, the same product) and lands in conflict
 * review, the manufacturer's simulated CRM (cli/crm-sim.ts, fed by a REST sink subscription of the
 * manufacturer) approves Northwind's and rejects Contoso's through its signed inbound connector, and
 * both partners' webhooks receive the outcome of their own registration, and nothing of the other's.
 */
import { randomBytes } from 'node:crypto'
import { data, type ManagementClient } from '../client/index.ts'
import { TOPICS } from '../schemas/topics.ts'
import { CRM_BODY_MAPPING, CRM_INBOUND_MAPPING, startSimulatedCrm } from './crm-sim.ts'

/** A deal event a partner's webhook received (the demo's receivers hand them over). */
export interface SceneEvent {
  type: string
  dealId: string
  partnerId: string
  status: string
}

export interface DealSceneSummary {
  northwind: { dealId: string; registered: string; outcome: string | null }
  contoso: { dealId: string; registered: string; conflict: boolean; outcome: string | null }
  /** Steps the manufacturer's CRM received (through its REST sink). */
  crmReceived: number
  /** Deal events of one partner that reached the other (always 0). */
  crossDelivered: number
  complete: boolean
}

export interface DealSceneContext {
  url: string
  /** The admin key's client (creates the partners' keys). */
  api: ManagementClient
  publisher: ManagementClient
  publisherId: string
  client(key: string): ManagementClient
  partners: { northwind: string; contoso: string }
  /** Every deal event the two partners' webhooks received, as they arrive. */
  received: SceneEvent[]
  say(msg: string): void
}

const DEAL_TYPES = [...TOPICS.dealRegistrations.eventTypes]

async function until<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`demo: ${what} did not happen within ${timeoutMs / 1000} s`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

export async function runDealScene(ctx: DealSceneContext): Promise<DealSceneSummary> {
  const crm = await startSimulatedCrm()
  try {
    const crmSub = await data(
      ctx.publisher.POST('/subscriptions', {
        body: {
          name: 'acme-crm',
          eventTypes: DEAL_TYPES,
          sink: { type: 'rest', url: `${crm.url}/deals/{value.dealId}`, method: 'PUT', bodyMapping: CRM_BODY_MAPPING },
        },
      }),
    )
    const inbound = await data(
      ctx.publisher.POST('/inbound-connectors', { body: { name: 'acme-crm', mapping: CRM_INBOUND_MAPPING } }),
    )
    crm.connect(ctx.url + inbound.url, inbound.secret!)
    await until('the CRM subscription running', async () => {
      const s = await data(
        ctx.api.GET('/connectors/{connectorId}/status', { params: { path: { connectorId: crmSub.id } } }),
      )
      return s.state === 'running' ? true : undefined
    })
    ctx.say(
      `Acme's CRM (simulated, ${crm.url}) receives every deal registered with Acme through a REST sink, ` +
        `and decides through inbound connector ${inbound.id}`,
    )
    const key = async (organizationId: string, name: string) =>
      (await data(ctx.api.POST('/api-keys', { body: { scope: 'partner', organizationId, name } }))).key
    const northwind = ctx.client(await key(ctx.partners.northwind, 'northwind-portal'))
    const contoso = ctx.client(await key(ctx.partners.contoso, 'contoso-portal'))
    const customer = `initech-${randomBytes(2).toString('hex')}.example`
    const deal = (domain: string, reference: string) => ({
      manufacturerId: ctx.publisherId,
      partnerReference: reference,
      endCustomer: { name: 'Initech', domain, country: 'DE' },
      lines: [{ sku: 'DRL-2000', quantity: 40, unitPrice: '199.00' }],
      amount: '7960.00',
      currency: 'EUR',
      expectedCloseDate: new Date(Date.now() + 45 * 86_400_000).toISOString().slice(0, 10),
    })
    const nw = await data(northwind.POST('/deals', { body: deal(customer, 'NW-OPP-1') }))
    ctx.say(`Northwind registers deal ${nw.id} for Initech (${customer}): ${nw.state}`)
    const co = await data(contoso.POST('/deals', { body: deal(`shop.${customer}`, 'CO-OPP-7') }))
    ctx.say(
      `Contoso registers deal ${co.id} for Initech (shop.${customer}), the same product: ${co.state}` +
        (co.conflict ? ' (it learns a conflict exists, not whose)' : ''),
    )
    await until('both registrations at the CRM', () =>
      crm.received.filter((r) => r.step === 'deal.registered' && [nw.id, co.id].includes(r.dealId)).length === 2
        ? true
        : undefined,
    )
    ctx.say("the CRM received both registrations; the account manager approves Northwind's and rejects Contoso's")
    const approved = await crm.decide(nw.id, 'approve', 'registered first; strategic account')
    const rejected = await crm.decide(co.id, 'reject', 'another partner holds this opportunity')
    if (approved.status !== 200 || rejected.status !== 200)
      throw new Error(`demo: the CRM's decisions were refused: ${JSON.stringify([approved.body, rejected.body])}`)
    const outcome = (dealId: string, type: string) =>
      ctx.received.find((e) => e.dealId === dealId && e.type === type)?.status
    const nwOutcome = await until('deal.approved at Northwind', () => outcome(nw.id, 'deal.approved')).catch(() => null)
    const coOutcome = await until('deal.rejected at Contoso', () => outcome(co.id, 'deal.rejected')).catch(() => null)
    ctx.say(
      `Northwind's webhook: deal ${nw.id} ${nwOutcome ?? 'not received'}; ` +
        `Contoso's webhook: deal ${co.id} ${coOutcome ?? 'not received'}`,
    )
    const crossDelivered = ctx.received.filter(
      (e) =>
        (e.dealId === nw.id && e.partnerId !== ctx.partners.northwind) ||
        (e.dealId === co.id && e.partnerId !== ctx.partners.contoso),
    ).length
    return {
      northwind: { dealId: nw.id, registered: nw.state, outcome: nwOutcome ?? null },
      contoso: { dealId: co.id, registered: co.state, conflict: co.conflict, outcome: coOutcome ?? null },
      crmReceived: crm.received.length,
      crossDelivered,
      complete: nwOutcome === 'APPROVED' && coOutcome === 'REJECTED' && crossDelivered === 0,
    }
  } finally {
    await crm.close()
  }
}
