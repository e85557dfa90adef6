/**
 * The sink contract run for the REST sink against a real CRM-like API and OAuth2 token endpoint on
 * 127.0.0.1: one event per request, and batched (the same contract holds per event in a batch).
 */
import { createLogger } from '../../common/logger.ts'
import { HttpSinkClient } from '../../consumers/http/index.ts'
import { MappingSandbox, OAuth2TokenCache, RestSink, type RestSinkConfig } from '../../consumers/rest/index.ts'
import { startCrm } from '../helpers/crm.ts'
import { loopbackOnlyGuard } from '../helpers/receiver.ts'
import { contractRecord, runSinkContract, type PartnerMode } from './sink-contract.ts'

for (const batched of [false, true]) {
  runSinkContract(batched ? 'rest (batched)' : 'rest', async () => {
    const crm = await startCrm()
    const client = new HttpSinkClient({ guard: loopbackOnlyGuard })
    const tokens = new OAuth2TokenCache(client)
    const mappings = new MappingSandbox()
    const config: RestSinkConfig = {
      url: batched ? `${crm.url}/api/stock` : `${crm.url}/api/stock/{key}`,
      method: batched ? 'POST' : 'PUT',
      auth: { type: 'oauth2', tokenUrl: crm.tokenUrl, clientId: crm.clientId, clientSecret: crm.clientSecret },
      bodyMapping: '{ "externalId": key, "n": value.n, "eventId": eventId }',
      timeoutMs: 2000,
      ...(batched ? { batch: { maxEvents: 4, maxWaitMs: 10 } } : {}),
    }
    return {
      async start(subscriptionId, onAttempt) {
        const sink = new RestSink(client, tokens, mappings)
        await sink.start(config, { subscriptionId, logger: createLogger({ write: () => {} }), onAttempt })
        return {
          sink,
          partner: {
            // batched: the per-item event ids of every request; else the Idempotency-Key header
            receivedIds: () =>
              crm.requests
                .filter((r) => r.status !== 401)
                .flatMap((r) =>
                  batched
                    ? (r.body as Array<{ eventId: string }>).map((i) => i.eventId)
                    : [String(r.headers['idempotency-key'])],
                ),
            setMode: (m: PartnerMode) =>
              void (crm.apiMode = m === 'ok' ? 'ok' : m === 'retriable' ? 'unavailable' : 'reject'),
          },
        }
      },
      // a value JSON cannot serialise: no body can be built (DataError)
      poisonRecord: (offset) => ({ ...contractRecord(offset), value: { n: BigInt(offset) } }),
      async close() {
        await mappings.close()
        await client.close()
        await crm.close()
      },
    }
  })
}
