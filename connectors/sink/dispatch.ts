/**
 * Which subscriptions a record of the shared stream is offered to. A partner ecosystem is many
 * subscriptions each wanting its own rows of the same topic (a distributor's SKUs, a reseller's own
 * deals): offering every record to every subscription, to be dropped by its row filter at delivery,
 * costs the worker (subscriptions x records) queue operations, a million a second for 1,000 partners at
 * 1,000 events/s. The index looks a record's candidates up by value instead.
 *
 * A subscription whose own row filter has a condition on a field is indexed under that field's
 * allowed values (`$partnerId` resolved). A record goes to the indexed subscriptions listed under its
 * first value at that path, and to every subscription that is not indexed (no filter, a pinned reader
 * schema, a snapshot bootstrap: they see everything, as before). The index only prunes: a subscription
 * it leaves out would have dropped the record anyway (every condition of a filter must hold, and the
 * record's first value at the field is not among the allowed ones); the candidates still go through
 * the full entitlement decision at delivery. Records without a decoded value (tombstones, poison) go
 * to every subscription: they are not filtered by rows.
 *
 * A subscription left out is not told: its position follows the shared stream's (DeliveryQueue
 * `safeOffset` with `seen`), so the cost of a record is its candidates only.
 */
import type { RowFilter } from '../../control-plane/types.ts'
import { decodeKey } from '../../control-plane/stored-keys.ts'
import { PARTNER_ID_PLACEHOLDER, scalar, valuesAt } from './entitlement.ts'

export interface DispatchEntry<R> {
  run: R
  /** The subscription's own row filter. */
  filter: RowFilter | undefined
  partnerId: string
  /** For the `filtered` count. */
  sinkType: string
  /** False: offered every record (e.g. a pinned reader schema: its value may differ from the writer's). */
  indexable: boolean
}

export class DispatchIndex<R> {
  /** Offered every record. */
  readonly every: R[] = []
  /** Every subscription of the index (tombstones, poison). */
  readonly all: R[] = []
  /** Field path -> allowed value -> subscriptions. */
  readonly #byField = new Map<string, Map<unknown, Array<DispatchEntry<R>>>>()
  /** Indexed subscriptions per sink type. */
  readonly #indexedBySink = new Map<string, number>()
  readonly indexed: number

  constructor(entries: Iterable<DispatchEntry<R>>) {
    let indexed = 0
    for (const e of entries) {
      this.all.push(e.run)
      const first = e.indexable && e.filter ? Object.entries(e.filter)[0] : undefined
      if (!first || !Array.isArray(first[1]?.in)) {
        this.every.push(e.run)
        continue
      }
      const path = decodeKey(first[0])
      let byValue = this.#byField.get(path)
      if (!byValue) this.#byField.set(path, (byValue = new Map()))
      for (const allowed of new Set(first[1].in.map((a) => (a === PARTNER_ID_PLACEHOLDER ? e.partnerId : a)))) {
        let list = byValue.get(allowed)
        if (!list) byValue.set(allowed, (list = []))
        list.push(e)
      }
      this.#indexedBySink.set(e.sinkType, (this.#indexedBySink.get(e.sinkType) ?? 0) + 1)
      indexed++
    }
    this.indexed = indexed
  }

  /**
   * The subscriptions that may want a record with this decoded value (null: none decoded, every
   * subscription), into `out`; calls `filtered` with the number of indexed subscriptions of each sink
   * type left out.
   */
  select(value: unknown, out: R[], filtered?: (sinkType: string, count: number) => void): void {
    if (value === null || value === undefined || this.indexed === 0) {
      for (const r of value === null || value === undefined ? this.all : this.every) out.push(r)
      return
    }
    for (const r of this.every) out.push(r)
    const chosen = filtered ? new Map<string, number>() : undefined
    for (const [path, byValue] of this.#byField) {
      const found = valuesAt(value, path)
      if (!found || found.length === 0) continue
      const list = byValue.get(scalar(found[0]))
      if (!list) continue
      for (const e of list) {
        out.push(e.run)
        if (chosen) chosen.set(e.sinkType, (chosen.get(e.sinkType) ?? 0) + 1)
      }
    }
    if (filtered) {
      for (const [sinkType, n] of this.#indexedBySink) {
        const left = n - (chosen!.get(sinkType) ?? 0)
        if (left > 0) filtered(sinkType, left)
      }
    }
  }
}
