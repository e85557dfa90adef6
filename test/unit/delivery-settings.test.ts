import { expect } from 'chai'
import { ConfigError } from '../../common/errors.ts'
import { loadConfig } from '../../config/index.ts'
import { STANDARD_WEBHOOKS_SCHEDULE_MS } from '../../connectors/retry.ts'
import { deliveryDefaults, webhookClientSettings } from '../../connectors/sink/settings.ts'

describe('delivery settings', () => {
  it('default to the Standard Webhooks schedule and sane webhook client settings', () => {
    const d = deliveryDefaults(loadConfig({ env: {} }))
    expect(d.policy.delaysMs).to.deep.equal([...STANDARD_WEBHOOKS_SCHEDULE_MS])
    expect(d.policy.jitter).to.equal(0.1)
    expect(d).to.include({
      concurrency: 32,
      parkAfterFailures: 5,
      disableAfterMs: 5 * 24 * 3600_000,
      webhookTimeoutMs: 15_000,
    })
    expect(webhookClientSettings(loadConfig({ env: {} }))).to.include({
      connectionsPerOrigin: 32,
      connectTimeoutMs: 10_000,
    })
  })

  it('read the schedule and jitter from the environment', () => {
    const d = deliveryDefaults(
      loadConfig({ env: { DELIVERY_RETRY_SCHEDULE: '1s, 10s,1m', DELIVERY_RETRY_JITTER: '0.25' } }),
    )
    expect(d.policy.delaysMs).to.deep.equal([1000, 10_000, 60_000])
    expect(d.policy.jitter).to.equal(0.25)
  })

  it('refuse a malformed schedule or jitter at boot, naming the variable', () => {
    expect(() => loadConfig({ env: { DELIVERY_RETRY_SCHEDULE: '5s,soon' } })).to.throw(
      ConfigError,
      /DELIVERY_RETRY_SCHEDULE/,
    )
    expect(() => loadConfig({ env: { DELIVERY_RETRY_JITTER: '2' } })).to.throw(ConfigError, /DELIVERY_RETRY_JITTER/)
  })
})
