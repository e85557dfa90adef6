/**
 * What a partner's webhook receiver can check of the deliveries it got, without a test framework:
 * the Standard Webhooks signature of each request, and per-key order of first deliveries. Shared by
 * the chaos runner and the sink tests (test/helpers/sink-assertions.ts asserts on these).
 */
import type { IncomingHttpHeaders } from 'node:http'
import { Webhook } from 'standardwebhooks'

export interface WebhookRequest {
  headers: IncomingHttpHeaders
  body: string
}

export interface VerifiedDelivery<T = unknown> {
  /** The webhook-id header: the event's id, the same on every attempt. */
  id: string
  payload: T
}

/** The request's payload once its signature verified with the subscription's secret (throws otherwise). */
export function verifyDelivery<T = unknown>(wh: Webhook, r: WebhookRequest): VerifiedDelivery<T> {
  const headers = {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  }
  return { id: headers['webhook-id'], payload: wh.verify(r.body, headers) as T }
}

export interface KeyedDelivery {
  id: string
  key: string
  seq: number
}

export interface OrderViolation {
  key: string
  /** The sequences of the key's first deliveries, in the order they arrived. */
  seqs: number[]
  /** The index in `seqs` of the first one lower than the one before it. */
  at: number
}

/**
 * Per key, the first delivery of each event (later ones with the same id are redeliveries and do
 * not count) must come in sequence order; the keys where it did not.
 */
export function perKeyOrderViolations(deliveries: Iterable<KeyedDelivery>): OrderViolation[] {
  const seen = new Set<string>()
  const perKey = new Map<string, number[]>()
  for (const d of deliveries) {
    if (seen.has(d.id)) continue
    seen.add(d.id)
    const seqs = perKey.get(d.key)
    if (seqs) seqs.push(d.seq)
    else perKey.set(d.key, [d.seq])
  }
  const out: OrderViolation[] = []
  for (const [key, seqs] of perKey) {
    const at = seqs.findIndex((s, i) => i > 0 && s < seqs[i - 1]!)
    if (at > 0) out.push({ key, seqs, at })
  }
  return out
}
