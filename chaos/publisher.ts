/**
 * A publisher's ingestion loop: keyed inventory.level.changed events at a steady rate through
 * POST /v1/events/inventory.level.changed, one request at a time (the events due since the last
 * one, 200 at most), each key's `sequence` increasing. A request that is not answered 202 (503 while
 * a broker fails over, errors while the store is away) is sent again, the same events, after a short
 * pause: the next events wait for it, so per key the accepted sequences only go up. Only 202s count;
 * their event ids are kept with the time of the answer (where delivery latency starts).
 */
export interface Accepted {
  publisher: string
  key: string
  sku: string
  locationId: string
  seq: number
  /** When the 202 arrived (ms since the epoch). */
  at: number
}

export interface PublisherStats {
  requests: number
  /** Answers by status (-1: no answer: a timeout or a cut connection). */
  statuses: Record<string, number>
  accepted: number
  /** The longest time between two 202s of this publisher, in ms. */
  longestGapMs: number
}

export const SKUS = 40
export const LOCATIONS = ['DC1', 'DC2'] as const

export class Publisher {
  readonly stats: PublisherStats = { requests: 0, statuses: {}, accepted: 0, longestGapMs: 0 }
  #stopped = false
  #seq = 0

  constructor(
    readonly name: string,
    private readonly api: string,
    private readonly key: string,
    /** The publisher's organization id: manufacturerId of its events. */
    readonly organizationId: string,
    private readonly accepted: Map<string, Accepted>,
  ) {}

  /** The event with sequence `seq`; keys go round SKUS x LOCATIONS. */
  event(seq: number) {
    const i = seq % (SKUS * LOCATIONS.length)
    const sku = `SKU-${i % SKUS}`
    const locationId = LOCATIONS[Math.floor(i / SKUS)]!
    const available = seq % 997
    return {
      manufacturerId: this.organizationId,
      sku,
      locationId,
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: available + 3,
      reserved: 3,
      available,
      incoming: [],
      sequence: seq,
      occurredAt: new Date().toISOString(),
    }
  }

  /**
   * Publishes at `rate` events/s until `count` were accepted and `more()` says no more are wanted
   * (the faults are not over yet), or `stop()`.
   */
  async run(rate: number, count: number, more: () => boolean): Promise<void> {
    const t0 = Date.now()
    let lastAccept = t0
    let sent = 0
    while (!this.#stopped && (this.stats.accepted < count || more())) {
      const due = Math.floor(((Date.now() - t0) * rate) / 1000) - sent
      if (due <= 0) {
        await sleep(Math.max(5, Math.min(100, 1000 / rate)))
        continue
      }
      const batch = Array.from({ length: Math.min(due, 200) }, () => this.event(++this.#seq))
      // the same events until they are accepted
      for (;;) {
        const status = await this.post(batch)
        if (status === 202 || this.#stopped) break
        await sleep(status === 429 || status === 503 ? 500 : 250)
      }
      sent += batch.length
      const now = Date.now()
      this.stats.longestGapMs = Math.max(this.stats.longestGapMs, now - lastAccept)
      lastAccept = now
    }
  }

  stop(): void {
    this.#stopped = true
  }

  private async post(batch: Array<ReturnType<Publisher['event']>>): Promise<number> {
    this.stats.requests++
    let status = -1
    try {
      const res = await fetch(`${this.api}/v1/events/inventory.level.changed`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
        body: JSON.stringify(batch),
        signal: AbortSignal.timeout(120_000),
      })
      status = res.status
      const body = (await res.json().catch(() => ({}))) as { eventIds?: string[] }
      if (status === 202) {
        const at = Date.now()
        const ids = body.eventIds ?? []
        if (ids.length !== batch.length) throw new Error(`202 with ${ids.length} event ids for ${batch.length} events`)
        ids.forEach((id, i) => {
          const e = batch[i]!
          this.accepted.set(id, {
            publisher: this.name,
            key: `${this.organizationId}/${e.sku}/${e.locationId}`,
            sku: e.sku,
            locationId: e.locationId,
            seq: e.sequence,
            at,
          })
        })
        this.stats.accepted += ids.length
      }
    } catch (err) {
      if (status === 202) throw err
      status = -1
    }
    this.stats.statuses[status] = (this.stats.statuses[status] ?? 0) + 1
    return status
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
