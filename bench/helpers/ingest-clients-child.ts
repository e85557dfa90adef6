/**
 * Child process of the ingest benchmark: the HTTP clients. On each message { url, body, senders, ms,
 * batch } it runs `senders` concurrent loops that POST the body and expect 202 for `ms` milliseconds,
 * then answers { n: events accepted, sec } (or { error }). The publishers of a real deployment are
 * other machines; here they are another process, so that the measured process only does the ingest.
 */
interface Run {
  url: string
  body: string
  senders: number
  ms: number
  batch: number
}

process.on('message', (msg: Run) => {
  void (async () => {
    let n = 0
    const t0 = Date.now()
    try {
      await Promise.all(
        Array.from({ length: msg.senders }, async () => {
          while (Date.now() - t0 < msg.ms) {
            const res = await fetch(msg.url, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: msg.body,
            })
            await res.arrayBuffer()
            if (res.status !== 202) throw new Error(`ingest answered ${res.status}`)
            n += msg.batch
          }
        }),
      )
      process.send?.({ n, sec: (Date.now() - t0) / 1000 })
    } catch (err) {
      process.send?.({ error: (err as Error).message })
    }
  })()
})
process.on('disconnect', () => process.exit(0))
