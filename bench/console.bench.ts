/**
 * The console's deliveries page of a subscription with BENCH_CONSOLE_DELIVERIES (default 100,000)
 * deliveries in its delivery log, filtered to failures (dead letters, 5% of them), as a signed-in
 * partner loads it: the page (50 rows with their attempts) rendered by the platform. One request at a
 * time for the run time after a warm-up; p50 and p95. Baseline, same run, same store: the management
 * API's JSON of the same search (GET /v1/subscriptions/{id}/deliveries?status=dead&limit=50).
 */
import { loadConfig } from '../config/index.ts'
import { createHash, randomUUID } from 'node:crypto'
import { figure, type Benchmark } from './types.ts'
import { deliveryId } from '../control-plane/deliveries.ts'
import type { DeliveryDoc } from '../control-plane/types.ts'
import { startManagement } from '../test/helpers/management.ts'

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN
}

export const benchmark: Benchmark = {
  description:
    "the console's deliveries page filtered to failures, 100,000 deliveries in the log (p95, goal <= 300 ms), " +
    "beside the API's JSON of the same search",
  defaultDurationMs: 10_000,
  async run(ctx) {
    const total = loadConfig().bench.consoleDeliveries
    const h = await startManagement({ dbName: `bench-console-${randomUUID().slice(0, 8)}`, console: true })
    try {
      const mk = async (kind: string, slug: string) =>
        (await h.call('POST', '/v1/organizations', { body: { kind, name: slug, slug } })).body.id as string
      const pub = await mk('publisher', 'acme')
      const partner = await mk('partner', 'northwind')
      const pkey = (
        await h.call('POST', '/v1/api-keys', { body: { scope: 'publisher', organizationId: pub, name: 'k' } })
      ).body.key as string
      const key = (
        await h.call('POST', '/v1/api-keys', { body: { scope: 'partner', organizationId: partner, name: 'k' } })
      ).body.key as string
      const g = await h.call('POST', '/v1/grants', {
        key: pkey,
        body: { partnerId: partner, entitlements: [{ eventType: 'inventory.level.changed' }] },
      })
      await h.call('POST', `/v1/grants/${g.body.id}/accept`, { key })
      const s = await h.call('POST', '/v1/subscriptions', {
        key,
        body: {
          name: 'stock',
          eventTypes: ['inventory.level.changed'],
          sink: { type: 'webhook', url: 'https://partner.example/hooks' },
        },
      })
      const sub = s.body.id as string

      // the log, written as the runtime writes it (its document shape), in batches
      const meter = ctx.meter('writing the delivery log', { total, unit: 'deliveries' })
      const t0 = Date.now() - total * 1000
      for (let i = 0; i < total; i += 1000) {
        const docs: DeliveryDoc[] = []
        for (let j = i; j < Math.min(total, i + 1000); j++) {
          const eventId = createHash('sha256').update(`${sub}-${j}`).digest('hex').slice(0, 32)
          const at = new Date(t0 + j * 1000)
          const status = j % 20 === 0 ? 'dead' : j % 20 === 1 ? 'retrying' : 'delivered'
          const code = status === 'delivered' ? 204 : 503
          const attempts = Array.from({ length: status === 'delivered' ? 1 : 3 }, (_, k) => ({
            at: new Date(at.getTime() + k * 5000),
            durationMs: 12,
            statusCode: code,
            error: code === 204 ? null : 'HTTP 503',
            responseExcerpt: code === 204 ? null : 'upstream busy',
          }))
          docs.push({
            _id: deliveryId(sub, eventId),
            subscriptionId: sub,
            partnerId: partner,
            publisherId: pub,
            eventId,
            eventType: 'inventory.level.changed',
            key: `{"sku":"SKU-${j % 5000}"}`,
            status,
            attempts,
            attemptCount: attempts.length,
            source: { topic: 'inventory.levels', partition: j % 6, offset: String(j) },
            createdAt: at,
            updatedAt: at,
            deliveredAt: status === 'delivered' ? at : null,
            deadAt: status === 'dead' ? at : null,
            deadReason: status === 'dead' ? 'retries exhausted' : null,
            retryRequestedAt: null,
          })
        }
        await h.cp.cols.deliveries.insertMany(docs, { ordered: false })
        // as the runtime's delivery log does after each failed attempt: the failures index
        await h.cp.deliveries.failures.note(
          sub,
          'dead',
          docs.filter((d) => d.status === 'dead').map((d) => ({ id: d._id, at: d.createdAt, createdAt: d.createdAt })),
        )
        meter.update(Math.min(total, i + 1000))
      }
      meter.finish()

      // a signed-in partner
      const form = await fetch(`${h.url}/console/signin`)
      const pre = form.headers.getSetCookie()[0]!.split(';')[0]!
      const signed = await fetch(`${h.url}/console/signin`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: pre, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: pre.split('=')[1]!, apiKey: key }).toString(),
      })
      const cookie = signed.headers
        .getSetCookie()
        .find((c) => c.startsWith('distributary_console='))!
        .split(';')[0]!

      const page = async () => {
        const res = await fetch(`${h.url}/console/subscriptions/${sub}/deliveries?status=dead`, { headers: { cookie } })
        const text = await res.text()
        if (res.status !== 200 || !text.includes('data-status="dead"'))
          throw new Error(`the page answered ${res.status}`)
      }
      const api = async () => {
        const res = await fetch(`${h.url}/v1/subscriptions/${sub}/deliveries?status=dead&limit=50`, {
          headers: { authorization: `Bearer ${key}` },
        })
        const body = (await res.json()) as { items: unknown[] }
        if (res.status !== 200 || body.items.length !== 50) throw new Error(`the API answered ${res.status}`)
      }
      const time = async (fn: () => Promise<void>, ms: number) => {
        const out: number[] = []
        const end = performance.now() + ms
        while (performance.now() < end) {
          const t = performance.now()
          await fn()
          out.push(performance.now() - t)
        }
        return out
      }
      ctx.progress('warming up')
      await time(page, 1500)
      await time(api, 1500)
      // the arms alternate in rounds, so load drift on the shared machine hits both
      const pages: number[] = []
      const apis: number[] = []
      for (let round = 0; round < 4; round++) {
        pages.push(...(await time(page, ctx.durationMs / 4)))
        apis.push(...(await time(api, ctx.durationMs / 8)))
      }
      ctx.progress(`${pages.length} pages, ${apis.length} API answers`)
      return [
        figure('console.deliveries.failures.p95', quantile(pages, 0.95), 'ms', null, 300, true),
        figure('console.deliveries.failures.p50', quantile(pages, 0.5), 'ms', null, null, true),
        figure('console.deliveries.vs-api.p95', quantile(pages, 0.95), 'ms', quantile(apis, 0.95), null, true),
      ]
    } finally {
      await h.stop()
      await h.db.dropDatabase().catch(() => undefined) // nothing writes to it any more
      await h.close()
    }
  },
}
