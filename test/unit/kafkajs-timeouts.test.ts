/**
 * kafkajs' request queue never arms a timer with a negative delay (Node 24 warns about each one):
 * the queue's own scheduling, run on a queue whose throttle time has passed, with and without
 * pending requests.
 */
import { createRequire } from 'node:module'
import { expect } from 'chai'
import { installKafkaTimeoutPatch, uninstallKafkaTimeoutPatch } from '../../common/kafka/timeouts.ts'

const require = createRequire(import.meta.url)
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
  prototype: { scheduleCheckPendingRequests(): void }
}

/** The delays scheduleCheckPendingRequests passes to setTimeout for a queue in this state. */
function delaysFor(state: { throttledUntil: number; pending: unknown[] }): number[] {
  const delays: number[] = []
  const real = globalThis.setTimeout
  globalThis.setTimeout = ((fn: () => void, ms: number) => {
    delays.push(ms)
    return real(() => undefined, 0)
  }) as typeof setTimeout
  try {
    const queue = { ...state, throttleCheckTimeoutId: null, checkPendingRequests: () => undefined }
    RequestQueue.prototype.scheduleCheckPendingRequests.call(queue)
  } finally {
    globalThis.setTimeout = real
  }
  return delays
}

describe('kafkajs request queue timers', () => {
  after(() => installKafkaTimeoutPatch())

  it(
    'stock kafkajs 2.2.4 asks for a negative delay when nothing is pending and ' +
      'the throttle passed (what Node 24 warns about)',
    () => {
      uninstallKafkaTimeoutPatch()
      expect(delaysFor({ throttledUntil: 0, pending: [] })[0]).to.be.below(0)
    },
  )

  it('patched: never negative; the throttle still delays, pending requests are checked every 10 ms', () => {
    expect(installKafkaTimeoutPatch()).to.equal(true)
    expect(delaysFor({ throttledUntil: 0, pending: [] })).to.deep.equal([0])
    expect(delaysFor({ throttledUntil: 0, pending: [{}] })).to.deep.equal([10])
    const [throttled] = delaysFor({ throttledUntil: Date.now() + 500, pending: [{}] })
    expect(throttled).to.be.within(400, 500)
  })
})
