/**
 * Child process of the latency benchmark: the publisher. On { url, rate, ms, manufacturerId, firstSeq }
 * it POSTs one inventory event per request (its sequence in the x-bench-seq header) to `url` at
 * `rate` per second for `ms` (open loop: each event has an intended send time on a fixed schedule, a
 * late event loop sends the overdue ones at once), and reports to the parent in batches over IPC: `sent` (seq, intended
 * time, ...) and
 * `answered` (seq, answer time, status, ...; status 0 = no answer), then { done: number sent }.
 * Publishers of a real deployment are other machines; here they are another process, so that the
 * measured process only runs the platform.
 */
import { Agent, request } from 'undici'
import type { PublisherRun } from './ingest-arm.ts'
import { levelEvent, now, openLoop } from './latency.ts'

const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 })
let sent: number[] = []
let answered: number[] = []
const flush = (): void => {
  if (sent.length === 0 && answered.length === 0) return
  process.send?.({ sent, answered })
  sent = []
  answered = []
}
setInterval(flush, 20)

process.on('message', (msg: PublisherRun) => {
  void (async () => {
    let open = 0
    const total = await openLoop(
      msg.rate,
      msg.ms,
      (seq, at) => {
        sent.push(seq, at)
        open++
        request(msg.url, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json', 'x-bench-seq': String(seq) },
          body: JSON.stringify([levelEvent(seq, msg.manufacturerId)]),
        })
          .then(async (res) => {
            await res.body.dump()
            answered.push(seq, now(), res.statusCode)
          })
          .catch(() => answered.push(seq, now(), 0))
          .finally(() => open--)
      },
      msg.firstSeq,
    )
    const deadline = Date.now() + 30_000
    while (open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    flush()
    process.send?.({ done: total })
  })()
})
process.on('disconnect', () => process.exit(0))
