/**
 * kafkajs 2.2.4 arms a timer with a negative delay: RequestQueue.scheduleCheckPendingRequests
 * schedules its check at `throttledUntil - Date.now()`, which is negative once a broker's throttle
 * time has passed and no request is pending (the common case: throttledUntil is 0 until a broker
 * throttles). Node treats such a delay as 1 ms, and since Node 24 also prints a
 * TimeoutNegativeWarning on stderr, many times per process. This module replaces the method with
 * the same logic and the delay clamped at 0 (the timer fires at once, as before). Installed once, by
 * common/kafka/client.ts; another kafkajs version is left as it is (kafkajs has had no release since
 * 2.2.4, and a fixed release would not need this).
 */
import { patchableKafkajsModule } from './internals.ts'

interface RequestQueueLike {
  throttledUntil: number
  pending: unknown[]
  throttleCheckTimeoutId: NodeJS.Timeout | null
  checkPendingRequests(): void
}
interface RequestQueueClass {
  prototype: RequestQueueLike & { scheduleCheckPendingRequests(this: RequestQueueLike): void }
}

/** kafkajs' own CHECK_PENDING_REQUESTS_INTERVAL (network/requestQueue/index.js). */
const CHECK_PENDING_REQUESTS_INTERVAL = 10

let original: RequestQueueClass['prototype']['scheduleCheckPendingRequests'] | undefined

const requestQueueClass = () => patchableKafkajsModule<RequestQueueClass>('kafkajs/src/network/requestQueue/index.js')

/**
 * Installs the clamped delay (idempotent). False when the installed kafkajs is not the version this was written for.
 */
export function installKafkaTimeoutPatch(): boolean {
  const RequestQueue = requestQueueClass()
  if (!RequestQueue) return false
  if (original) return true
  original = RequestQueue.prototype.scheduleCheckPendingRequests
  RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueueLike): void {
    let scheduleAt = this.throttledUntil - Date.now()
    if (!this.throttleCheckTimeoutId) {
      if (this.pending.length > 0) scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL
      this.throttleCheckTimeoutId = setTimeout(
        () => {
          this.throttleCheckTimeoutId = null
          this.checkPendingRequests()
        },
        Math.max(0, scheduleAt),
      )
    }
  }
  return true
}

export function uninstallKafkaTimeoutPatch(): void {
  const RequestQueue = requestQueueClass()
  if (RequestQueue && original) RequestQueue.prototype.scheduleCheckPendingRequests = original
  original = undefined
}
