/**
 * `npm run bench -- deals`: the two legs of a deal registration's round trip on one running platform
 * (API, deals relay, sink worker, REST sink, inbound connector; real Kafka and the store), over
 * BENCH_DEALS (config bench.deals, default 200, at least 200) deals registered at BENCH_DEALS_RATE
 * (bench.dealsRate) per second:
 *
 * - `deals.to-crm.p99`: from a partner sending POST /v1/deals to the publisher's CRM (the
 *   simulated CRM of cli/crm-sim.ts, on 127.0.0.1 behind a REST sink with a JSONata mapping)
 *   receiving deal.registered;
 * - `deals.to-partner.p99`: from the CRM sending its signed approval to the inbound connector to the
 *   partner's webhook receiving deal.approved.
 *
 * Goal (issue 19): p99 ≤ 1 s each way (absolute bounds). The baseline, in the same run: raw kafkajs,
 * one produce (acks=all) and one consume per record at the same rate; the platform's legs each hold
 * two such hops (the relay's produce, the worker's read) plus the store writes and HTTP calls.
 */
import { randomUUID } from 'node:crypto'
import { startPlatform } from '../cli/platform.ts'
import { CRM_BODY_MAPPING, CRM_INBOUND_MAPPING, startSimulatedCrm } from '../cli/crm-sim.ts'
import { createLogger } from '../common/logger.ts'
import { loadConfig } from '../config/index.ts'
import { TOPICS } from '../schemas/topics.ts'
import { testKafka, testPlatformConfig, uniqueName, waitFor } from '../test/helpers/env.ts'
import { deleteTopics } from '../test/helpers/registry.ts'
import { startReceiver } from '../test/helpers/receiver.ts'
import { now, percentile, rawProduceConsume } from './helpers/latency.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

export const benchmark: Benchmark = {
  description: 'deal registration → CRM, and CRM decision → partner webhook (p99, absolute goal 1 s each way)',
  async run(ctx): Promise<Figure[]> {
    const { deals: DEALS, dealsRate: RATE } = loadConfig().bench
    if (DEALS < 200)
      throw new Error(`BENCH_DEALS (bench.deals) must be at least 200, not ${DEALS}: a p99 of fewer is one deal`)
    const { config, adminKey } = testPlatformConfig('bench-deals')
    const p = await startPlatform(config, createLogger({ level: 'warn' }), { stopStackOnClose: false })
    const crm = await startSimulatedCrm()
    /** When each registration was sent (by its partnerReference, which the CRM's record carries). */
    const sentAt = new Map<string, number>()
    const toCrm: number[] = []
    const decidedAt = new Map<string, number>()
    const toPartner: number[] = []
    const decisionRoundTrip: number[] = []
    const partnerHook = await startReceiver(
      (r, res) => {
        res.writeHead(204).end()
        const e = JSON.parse(r.body) as { type: string; data: { dealId: string } }
        const sent = decidedAt.get(e.data.dealId)
        if (e.type === 'deal.approved' && sent !== undefined) toPartner.push(r.at - sent)
      },
      { keep: false },
    )
    try {
      await p.contracts
      const call = async (method: string, path: string, body: unknown, key = adminKey) => {
        const res = await fetch(p.url + path, {
          method,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
        return { status: res.status, body: (await res.json()) as Record<string, string> }
      }
      const tag = randomUUID().slice(0, 8)
      const pub = (await call('POST', '/v1/organizations', { kind: 'publisher', name: 'Acme', slug: `acme-${tag}` }))
        .body.id as string
      const partner = (
        await call('POST', '/v1/organizations', { kind: 'partner', name: 'Northwind', slug: `northwind-${tag}` })
      ).body.id as string
      const pubKey = (await call('POST', '/v1/api-keys', { scope: 'publisher', organizationId: pub, name: 'crm' })).body
        .key as string
      const partnerKey = (
        await call('POST', '/v1/api-keys', { scope: 'partner', organizationId: partner, name: 'portal' })
      ).body.key as string
      const types = [...TOPICS.dealRegistrations.eventTypes]
      const grant = await call(
        'POST',
        '/v1/grants',
        { partnerId: partner, entitlements: types.map((eventType) => ({ eventType })) },
        pubKey,
      )
      await call('POST', `/v1/grants/${grant.body.id}/accept`, {}, partnerKey)
      const subs = [
        (
          await call(
            'POST',
            '/v1/subscriptions',
            {
              name: 'crm',
              eventTypes: types,
              sink: {
                type: 'rest',
                url: `${crm.url}/deals/{value.dealId}`,
                method: 'PUT',
                bodyMapping: CRM_BODY_MAPPING,
              },
            },
            pubKey,
          )
        ).body.id as string,
        (
          await call(
            'POST',
            '/v1/subscriptions',
            { name: 'portal', eventTypes: ['deal.approved'], sink: { type: 'webhook', url: partnerHook.url } },
            partnerKey,
          )
        ).body.id as string,
      ]
      for (const id of subs) {
        await waitFor(
          async () => {
            const res = await fetch(`${p.url}/v1/connectors/${id}/status`, {
              headers: { authorization: `Bearer ${adminKey}` },
            })
            return ((await res.json()) as { state?: string }).state === 'running'
          },
          { timeoutMs: 60_000, what: `connector ${id} running` },
        )
      }
      const inbound = await call(
        'POST',
        '/v1/inbound-connectors',
        { name: 'crm', mapping: CRM_INBOUND_MAPPING },
        pubKey,
      )
      crm.connect(p.url + (inbound.body.url as string), inbound.body.secret as string)
      // The CRM decides as soon as a registration arrives (its users are quick): the second leg starts there.
      const decisions: Promise<unknown>[] = []
      crm.onRecord = (r) => {
        const at = sentAt.get(String(r.body.Partner_Reference__c))
        if (r.step !== 'deal.registered' || at === undefined) return
        toCrm.push(r.at - at)
        const sent = now()
        decidedAt.set(r.dealId, sent)
        decisions.push(
          crm.decide(r.dealId, 'approve').then((answer) => {
            decisionRoundTrip.push(now() - sent)
            if (answer.status !== 200)
              ctx.progress(`decision on ${r.dealId}: ${answer.status} ${JSON.stringify(answer.body)}`)
          }),
        )
      }
      const meter = ctx.meter('deals registered', { total: DEALS, unit: 'deals' })
      const t0 = now()
      const posts: Promise<void>[] = []
      let registered = 0
      for (let i = 0; i < DEALS; i++) {
        const due = t0 + (i * 1000) / RATE
        const wait = due - now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        sentAt.set(`bench-${i}`, now())
        posts.push(
          call(
            'POST',
            '/v1/deals',
            {
              manufacturerId: pub,
              partnerReference: `bench-${i}`,
              endCustomer: { name: `Customer ${i}`, domain: `c${i}-${tag}.example`, country: 'DE' },
              lines: [{ sku: 'DRL-2000', quantity: 1 }],
              amount: '100.00',
              currency: 'EUR',
              expectedCloseDate: '2027-06-30',
            },
            partnerKey,
          ).then((r) => {
            if (r.status !== 201) ctx.progress(`registration ${i}: ${r.status} ${JSON.stringify(r.body)}`)
            meter.update(++registered)
          }),
        )
      }
      await Promise.all(posts)
      meter.finish()
      await waitFor(() => toPartner.length >= DEALS || undefined, {
        timeoutMs: 120_000,
        what: `${DEALS} approvals at the partner`,
      }).catch(() => undefined)
      await Promise.allSettled(decisions)
      ctx.progress(`received: ${toCrm.length} at the CRM, ${toPartner.length} approvals at the partner (of ${DEALS})`)
      // the baseline: raw kafkajs produce → consume at the same rate, on a topic of its own
      const kafka = testKafka()
      const admin = kafka.admin()
      await admin.connect()
      const topic = uniqueName('bench-deals-raw')
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
      const raw = await rawProduceConsume(
        kafka,
        topic,
        RATE,
        2000,
        Math.ceil((DEALS / RATE) * 1000),
        Buffer.alloc(600, 1),
        uniqueName('g'),
      )
      await deleteTopics(topic).catch(() => undefined)
      await admin.disconnect()
      const rawP99 = percentile(raw.latencies, 0.99)
      return [
        figure('deals.to-crm.p50', percentile(toCrm, 0.5), 'ms', null, null, true),
        figure('deals.to-crm.p99', percentile(toCrm, 0.99), 'ms', null, 1000, true),
        figure('deals.to-partner.p50', percentile(toPartner, 0.5), 'ms', null, null, true),
        figure('deals.to-partner.p99', percentile(toPartner, 0.99), 'ms', null, 1000, true),
        figure('deals.inbound-call.p99', percentile(decisionRoundTrip, 0.99), 'ms', null, null, true),
        figure('deals.to-crm.p99.vs-raw', percentile(toCrm, 0.99), 'ms', rawP99, null, true),
        figure('deals.to-partner.p99.vs-raw', percentile(toPartner, 0.99), 'ms', rawP99, null, true),
        figure('deals.raw-kafka.p99', rawP99, 'ms', null, null, true),
        figure('deals.delivered', Math.min(toCrm.length, toPartner.length), 'deals', DEALS, null),
      ]
    } finally {
      await p.close()
      await crm.close()
      await partnerHook.close()
    }
  },
}
