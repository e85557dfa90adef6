/** Assertions shared by the sink runtime tests: standardwebhooks verification and per-key order. */
import { expect } from 'chai'
import { Webhook } from 'standardwebhooks'
import { perKeyOrderViolations, verifyDelivery } from '../../chaos/deliveries.ts'
import type { Receiver } from './receiver.ts'
import type { Level } from './sink-runtime.ts'

export interface Got {
  id: string
  sku: string
  seq: number
}

export function verified(secret: string, rx: Receiver): Got[] {
  const wh = new Webhook(secret)
  return rx.received.map((r) => {
    const { id, payload: p } = verifyDelivery<{ type: string; data: { sku: string; sequence: number } }>(wh, r)
    expect(p.type).to.equal('inventory.level.changed')
    return { id, sku: p.data.sku, seq: Number(p.data.sequence) }
  })
}

/** Per key, the first deliveries of each event are in sequence order; duplicates carry the same webhook-id and body. */
export function expectPerKeyOrder(got: Got[]): void {
  const violations = perKeyOrderViolations(got.map((g) => ({ id: g.id, key: g.sku, seq: g.seq })))
  expect(
    violations.map((v) => `order of ${v.key}: ${v.seqs.join(', ')}`),
    'per-key order',
  ).to.deep.equal([])
}

export function levels(n: number, keys: number, from = 0): Level[] {
  return Array.from({ length: n }, (_, i) => ({ sku: `SKU-${(from + i) % keys}`, seq: from + i }))
}
