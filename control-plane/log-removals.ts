/**
 * The removal of a deleted subscription's delivery log, in the background. On FerretDB v1 removing a subscription's
 * deliveries scans the whole log (about 25 s per 100,000 deliveries of all subscriptions), so DELETE
 * /v1/subscriptions/{id} does not wait for it: the removal is first recorded (a document per subscription, written
 * before the subscription goes, so a crash leaves the record behind), then run at once in the background, and the
 * control plane's periodic sweep (control-plane/service.ts `sweep`) runs any record left. Nothing reads a deleted
 * subscription's log (every read of the log names a subscription the caller can see), and a removal runs again
 * harmlessly: any process may take a record, twice.
 */
import type { Collection } from 'mongodb'
import type { Logger } from '../common/logger.ts'
import { isDuplicateKey } from '../common/store-errors.ts'
import type { DeliveryLog } from './deliveries.ts'
import type { LogRemovalDoc } from './types.ts'

export class LogRemovals {
  readonly #col: Collection<LogRemovalDoc>
  readonly #log: DeliveryLog
  readonly #logger: Logger
  /** The run under way, and whether a record came after it started (the run then goes round once more). */
  #running: Promise<void> | undefined
  #again = false

  constructor(col: Collection<LogRemovalDoc>, log: DeliveryLog, logger: Logger) {
    this.#col = col
    this.#log = log
    this.#logger = logger
  }

  /** Records that the log of `subscriptionId` is to be removed: before the subscription is deleted. */
  async request(subscriptionId: string): Promise<void> {
    try {
      await this.#col.updateOne(
        { _id: subscriptionId },
        { $setOnInsert: { requestedAt: new Date() } },
        { upsert: true },
      )
    } catch (err) {
      if (!isDuplicateKey(err)) throw err // a concurrent DELETE recorded it
    }
  }

  /**
   * Removes every recorded log, then their records. One run at a time in this process: a call while one runs makes it
   * go round again, and both callers get the end of that. Never rejects (a failure is logged; the record stays for the
   * next run).
   */
  run(): Promise<void> {
    if (this.#running) {
      this.#again = true
      return this.#running
    }
    const loop = async (): Promise<void> => {
      do {
        this.#again = false
        await this.#once()
      } while (this.#again)
    }
    this.#running = loop().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  /** How many removals are recorded and not done yet. */
  pending(): Promise<number> {
    return this.#col.countDocuments({})
  }

  async #once(): Promise<void> {
    let records: LogRemovalDoc[]
    try {
      records = await this.#col.find({}).sort({ requestedAt: 1 }).toArray()
    } catch (err) {
      this.#logger.warn('delivery log removals not read; the next sweep retries', { err })
      return
    }
    for (const { _id: subscriptionId } of records) {
      try {
        await this.#log.forget(subscriptionId)
        await this.#col.deleteOne({ _id: subscriptionId })
        this.#logger.info("deleted subscription's delivery log removed", { subscriptionId })
      } catch (err) {
        this.#logger.warn("deleted subscription's delivery log not removed yet; the next sweep retries", {
          subscriptionId,
          err,
        })
      }
    }
  }
}
