/** Assertions shared by the sink runtime tests: standardwebhooks verification and per-key order. */
import { expect } from 'chai'
import { Webhook } from 'standardwebhooks'
import type { Received, Receiver } from './receiver.ts'
import type { Level } from './sink-runtime.ts'

export interface Got {
  id: string
  sku: string
  seq: number
}

export function verified(secret: string, rx: Receiver): Got[] {
  const wh = new Webhook(secret)
  return rx.received.map((r: Received) => {
    const headers = { 'webhook-id': String(r.headers['webhook-id']), 'webhook-timestamp': String(r.headers['webhook-timestamp']), 'webhook-signature': String(r.headers['webhook-signature']) }
    const p = wh.verify(r.body, headers) as { type: string; data: { sku: string; sequence: number } }
    expect(p.type).to.equal('inventory.level.changed')
    return { id: headers['webhook-id'], sku: p.data.sku, seq: Number(p.data.sequence) }
  })
}

/** Per key, the first deliveries of each event are in sequence order; duplicates carry the same webhook-id and body. */
export function expectPerKeyOrder(got: Got[]): void {
  const seen = new Set<string>()
  const perKey = new Map<string, number[]>()
  for (const g of got) {
    if (seen.has(g.id)) continue
    seen.add(g.id)
    perKey.set(g.sku, [...(perKey.get(g.sku) ?? []), g.seq])
  }
  for (const [sku, seqs] of perKey) expect(seqs, `order of ${sku}`).to.deep.equal([...seqs].sort((a, b) => a - b))
}

export function levels(n: number, keys: number, from = 0): Level[] {
  return Array.from({ length: n }, (_, i) => ({ sku: `SKU-${(from + i) % keys}`, seq: from + i }))
}

