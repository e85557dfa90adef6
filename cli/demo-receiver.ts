/**
 * The demo's partner webhook receivers (cli/demo.ts): each checks every Standard Webhooks signature
 * with its subscription's secret, counts the stock changes and deals it receives, and hands the deal
 * registration scene's events (cli/demo-deals.ts) over as they arrive.
 */
import { timingSafeEqual } from 'node:crypto'
import { secretKey, sign } from '../consumers/webhook/signature.ts'
import type { SceneEvent } from './demo-deals.ts'
import { startLocalServer } from './local-server.ts'

export interface Receiver {
  url: string
  secret: string
  stock: Map<string, number> // key -> highest sequence received
  stockCount: number
  deals: number
  foreignDeals: number
  badSignatures: number
  fieldsSeen: Set<string>
  locationsSeen: Set<string>
  close(): Promise<void>
}

export async function startReceiver(
  secretRef: { secret: string },
  partnerId: () => string,
  scene: SceneEvent[],
): Promise<Receiver> {
  const r: Receiver = {
    url: '',
    get secret() {
      return secretRef.secret
    },
    stock: new Map(),
    stockCount: 0,
    deals: 0,
    foreignDeals: 0,
    badSignatures: 0,
    fieldsSeen: new Set(),
    locationsSeen: new Set(),
    close: () => server.close(),
  }
  const server = await startLocalServer((req, raw, res) => {
    const body = raw.toString('utf8')
    const id = String(req.headers['webhook-id'] ?? '')
    const ts = Number(req.headers['webhook-timestamp'])
    const expected = Buffer.from(sign(Buffer.from(secretKey(secretRef.secret) as Buffer), id, ts, body))
    const ok = String(req.headers['webhook-signature'] ?? '')
      .split(' ')
      .some((s) => {
        const got = Buffer.from(s)
        return got.length === expected.length && timingSafeEqual(got, expected)
      })
    if (!ok) {
      r.badSignatures++
      res.writeHead(401).end()
      return
    }
    const event = JSON.parse(body) as { type: string; data: Record<string, unknown> }
    if (event.type === 'inventory.level.changed') {
      r.stockCount++
      for (const f of Object.keys(event.data)) r.fieldsSeen.add(f)
      r.locationsSeen.add(String(event.data.locationId))
      const key = `${String(event.data.sku)}@${String(event.data.locationId)}`
      r.stock.set(key, Math.max(r.stock.get(key) ?? 0, Number(event.data.sequence)))
    } else if (event.type.startsWith('deal.')) {
      // the publisher's stream carries no partnerReference; the deal-registration scene's do
      if (event.data.partnerReference == null) r.deals++
      else
        scene.push({
          type: event.type,
          dealId: String(event.data.dealId),
          partnerId: partnerId(),
          status: String(event.data.status),
        })
      if (event.data.partnerId !== partnerId()) r.foreignDeals++
    }
    res.writeHead(204).end()
  })
  r.url = `${server.url}/webhooks`
  return r
}
