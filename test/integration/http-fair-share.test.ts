/**
 * One partner origin's connections are shared fairly between the subscriptions calling it: a
 * subscription that queued many calls to a slow origin does not make another subscription's call
 * wait behind all of them (real HTTP server on 127.0.0.1, the platform's webhook client).
 */
import { expect } from 'chai'
import { WebhookClient } from '../../consumers/webhook/client.ts'
import { loopbackOnlyGuard, startReceiver, type Receiver } from '../helpers/receiver.ts'

describe("HTTP sinks: fair shares of an origin's connections", function () {
  this.timeout(30_000)
  let rx: Receiver
  let client: WebhookClient
  before(async () => {
    // a slow origin: 150 ms per answer
    rx = await startReceiver((_r, res) => void setTimeout(() => res.writeHead(204).end(), 150))
    client = new WebhookClient({ guard: loopbackOnlyGuard, connectionsPerOrigin: 2 })
  })
  after(async () => {
    await client?.close()
    await rx?.close()
  })

  it(
    'a call of a second subscription goes out after at most one round of the ' +
      "first one's backlog, not behind all of it",
    async () => {
      const target = { url: rx.url, keys: [Buffer.alloc(32, 1)], timeoutMs: 10_000, headers: {} }
      const first = new AbortController()
      const second = new AbortController()
      const backlog = Array.from({ length: 12 }, (_, i) =>
        client.send(target, { id: `a-${i}`, body: '{}' }, first.signal),
      )
      await new Promise((r) => setImmediate(r))
      const mine = client.send(target, { id: 'b-0', body: '{}' }, second.signal)
      const results = await Promise.all([...backlog, mine])
      expect(results.map((r) => r.report.outcome)).to.deep.equal(Array(13).fill('delivered'))
      const order = rx.received.map((r) => r.headers['webhook-id'])
      expect(order.slice(0, 2), 'the first subscription had both connections').to.deep.equal(['a-0', 'a-1'])
      // first come, first served would have sent b-0 13th, after the whole backlog
      expect(order.indexOf('b-0'), `arrival order ${order.join(' ')}`).to.equal(2)
    },
  )
})
