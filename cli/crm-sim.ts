/**
 * A manufacturer's CRM, simulated (docs/deals.md): an HTTP API on 127.0.0.1 that a REST sink
 * subscription of the publisher upserts deal registrations into (`PUT /deals/{dealId}`, a
 * Salesforce-like body made by a JSONata mapping) and leads (`PUT /leads/{leadId}`), and that sends
 * its decisions back to the
 * platform's inbound connector, signed as Standard Webhooks sign, in a payload of its own shape.
 * Used by the demo, the deals benchmark and the end-to-end test.
 */
import { createHmac, randomUUID } from 'node:crypto'
import { startLocalServer } from './local-server.ts'

/** The REST sink's body mapping: the registration as a Salesforce-like Deal_Registration__c record. */
export const CRM_BODY_MAPPING = [
  '{',
  '  "Deal_Registration_Id__c": value.dealId,',
  '  "Partner_Account__c": value.partnerId,',
  '  "Partner_Reference__c": value.partnerReference,',
  '  "Status__c": value.status,',
  '  "Conflict__c": value.conflict,',
  '  "End_Customer__c": value.endCustomer.name,',
  '  "End_Customer_Domain__c": value.endCustomer.domain,',
  '  "Amount__c": value.amount,',
  '  "CurrencyIsoCode": value.currency,',
  '  "Step__c": eventType,',
  '  "Event_Id__c": eventId',
  '}',
].join('\n')

/** The body mapping of the publisher's leads subscription. */
export const CRM_LEAD_MAPPING =
  '{ "step": eventType, "status": value.status, "partner": value.partnerId, "company": value.company.name }'

/** The inbound connector's mapping from the CRM's decision payload. */
export const CRM_INBOUND_MAPPING =
  '{ "dealId": Deal_Registration_Id__c, "action": $lowercase(Decision__c), "reason": Comment__c }'

export interface CrmRecord {
  kind: 'deals' | 'leads'
  /** The deal's (or the lead's) id. */
  dealId: string
  step: string
  status: string
  body: Record<string, unknown>
  at: number
}

export interface SimulatedCrm {
  /** Base URL of its API (the REST sink's URL: `${url}/deals/{value.dealId}`). */
  url: string
  /** Every upsert it received, in order. */
  received: CrmRecord[]
  /** Called on every upsert (the demo and the benchmark react to them). */
  onRecord?: (r: CrmRecord) => void
  /** Where to send decisions, and the inbound connector's secret. */
  connect(inboundUrl: string, secret: string): void
  /** Sends a decision (approve, reject, return, won, lost) to the platform; answers the platform's answer. */
  decide(dealId: string, decision: string, comment?: string): Promise<{ status: number; body: unknown }>
  close(): Promise<void>
}

export async function startSimulatedCrm(): Promise<SimulatedCrm> {
  let inbound: { url: string; key: Buffer } | undefined
  const crm: SimulatedCrm = {
    url: '',
    received: [],
    connect(inboundUrl, secret) {
      inbound = { url: inboundUrl, key: Buffer.from(secret.slice('whsec_'.length), 'base64') }
    },
    async decide(dealId, decision, comment) {
      if (!inbound) throw new Error('the simulated CRM is not connected to an inbound connector')
      const raw = JSON.stringify({
        Deal_Registration_Id__c: dealId,
        Decision__c: decision.toUpperCase(),
        Comment__c: comment ?? null,
      })
      const id = `msg_${randomUUID()}`
      const ts = Math.floor(Date.now() / 1000)
      const signature = 'v1,' + createHmac('sha256', inbound.key).update(`${id}.${ts}.${raw}`).digest('base64')
      const res = await fetch(inbound.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(ts),
          'webhook-signature': signature,
        },
        body: raw,
      })
      const text = await res.text()
      return { status: res.status, body: text === '' ? null : (JSON.parse(text) as unknown) }
    },
    close: () => server.close(),
  }
  const server = await startLocalServer(
    (req, raw, res) => {
      const m = /^\/(deals|leads)\/([^/?]+)$/.exec(req.url ?? '')
      if (!m || (req.method !== 'PUT' && req.method !== 'POST')) {
        res.writeHead(404).end()
        return
      }
      try {
        const body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>
        const kind = m[1] as 'deals' | 'leads'
        const step = String(body.Step__c ?? body.step)
        const r: CrmRecord = {
          kind,
          dealId: decodeURIComponent(m[2]!),
          step,
          status: String(body.Status__c ?? body.status),
          body,
          at: Date.now(),
        }
        crm.received.push(r)
        crm.onRecord?.(r)
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: r.dealId, success: true }))
      } catch {
        res.writeHead(400).end()
      }
    },
    { keepAliveTimeout: 60_000 },
  )
  crm.url = server.url
  return crm
}
