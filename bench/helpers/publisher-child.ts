/**
 * Child process of the latency benchmark: the publisher. On { url, rate, ms, manufacturerId, firstSeq, batchMs }
 * it POSTs one inventory event per request (its sequence in the x-bench-seq header) to `url` at
 * `rate` per second for `ms` (open loop: each event has an intended send time on a fixed schedule, a
 * late event loop sends the overdue ones at once); with batchMs, the events that came due in the last batchMs in one
 * request (the first one's sequence in x-bench-seq, their number in x-bench-count). It reports to the parent in
 * batches over IPC: `sent` (seq, intended time, ...) and `answered` (seq, answer time, status, ...; status 0 = no
 * answer), then { done: number sent }.
 * Publishers of a real deployment are other machines; here they are another process, so that the
 * measured process only runs the platform.
 */
import { Agent, request } from 'undici'
import type { PublisherRun } from './ingest-arm.ts'
import { levelEvent, now, openLoopBatches } from './latency.ts'

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
    const post = (seqs: number[]) => {
      open++
      request(msg.url, {
        method: 'POST',
        dispatcher: agent,
        headers: {
          'content-type': 'application/json',
          'x-bench-seq': String(seqs[0]),
          'x-bench-count': String(seqs.length),
        },
        body: JSON.stringify(seqs.map((seq) => levelEvent(seq, msg.manufacturerId))),
      })
        .then(async (res) => {
          await res.body.dump()
          const at = now()
          for (const seq of seqs) answered.push(seq, at, res.statusCode)
        })
        .catch(() => {
          const at = now()
          for (const seq of seqs) answered.push(seq, at, 0)
        })
        .finally(() => open--)
    }
    const total = await openLoopBatches(
      msg.rate,
      msg.ms,
      msg.batchMs ?? 0,
      (seq, at) => sent.push(seq, at),
      post,
      msg.firstSeq,
    )
    const deadline = Date.now() + 30_000
    while (open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    flush()
    process.send?.({ done: total })
  })()
})
process.on('disconnect', () => process.exit(0))
