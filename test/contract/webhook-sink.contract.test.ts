/** The sink contract run for the webhook sink against a real receiver on 127.0.0.1. */
import { createLogger } from '../../common/logger.ts'
import { WebhookClient, WebhookSink, generateSecret } from '../../consumers/webhook/index.ts'
import { loopbackOnlyGuard, startReceiver } from '../helpers/receiver.ts'
import { contractRecord, runSinkContract, type PartnerMode } from './sink-contract.ts'

runSinkContract('webhook', async () => {
  let mode: PartnerMode = 'ok'
  const rx = await startReceiver((_r, res) => {
    if (mode === 'retriable') return res.writeHead(503).end('unavailable')
    if (mode === 'reject') return res.writeHead(422).end('invalid')
    res.writeHead(204).end()
  })
  const client = new WebhookClient({ guard: loopbackOnlyGuard })
  return {
    async start(subscriptionId, onAttempt) {
      const sink = new WebhookSink(client)
      await sink.start(
        { url: rx.url, secrets: [{ secret: generateSecret() }], timeoutMs: 2000 },
        { subscriptionId, logger: createLogger({ write: () => {} }), onAttempt },
      )
      return {
        sink,
        partner: {
          receivedIds: () => rx.received.map((r) => String(r.headers['webhook-id'])),
          setMode: (m) => void (mode = m),
        },
      }
    },
    // a value JSON cannot serialise: the webhook body cannot be built (DataError)
    poisonRecord: (offset) => ({ ...contractRecord(offset), value: { n: BigInt(offset) } }),
    async close() {
      await client.close()
      await rx.close()
    },
  }
})
