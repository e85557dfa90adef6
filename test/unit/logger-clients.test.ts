import { expect } from 'chai'
import { kafkaConfig } from '../../common/kafka/index.ts'
import { ConfigError } from '../../common/errors.ts'
import { createLogger } from '../../common/logger.ts'
import { loadConfig } from '../../config/index.ts'

describe('logger', () => {
  it('writes one JSON object a line with time, level, message and context', () => {
    const lines: string[] = []
    const log = createLogger({ level: 'info', write: (l) => lines.push(l), bindings: { service: 'x' } })
    log.debug('hidden')
    log.info('hello', { topic: 't' })
    expect(lines).to.have.length(1)
    const rec = JSON.parse(lines[0]!) as Record<string, unknown>
    expect(rec).to.include({ level: 'info', msg: 'hello', service: 'x', topic: 't' })
    expect(Date.parse(rec.time as string)).to.be.a('number').and.not.NaN
  })

  it('redacts secrets at any depth, and logs errors with code and context', () => {
    const lines: string[] = []
    const log = createLogger({ write: (l) => lines.push(l) })
    log.error('boom', {
      kafka: { sasl: { password: 'hunter2' } },
      uri: 'mongodb://u:pw@h/',
      apiKey: 'dk_live_secret',
      err: new ConfigError('bad', { key: 'x', token: 'tok' }),
    })
    const line = lines[0]!
    for (const secret of ['hunter2', 'mongodb://u:pw@h/', 'dk_live_secret', 'tok"']) expect(line).to.not.contain(secret)
    const rec = JSON.parse(line) as { err: { code: string; context: { key: string } } }
    expect(rec.err.code).to.equal('CONFIG_INVALID')
    expect(rec.err.context.key).to.equal('x')
  })
})

describe('Kafka client configuration', () => {
  it('plain local stack: no TLS, no SASL', () => {
    const k = kafkaConfig(loadConfig({ env: {} }))
    expect(k.brokers).to.deep.equal(['127.0.0.1:9092'])
    expect(k.ssl).to.equal(undefined)
    expect(k.sasl).to.equal(undefined)
  })

  it('a managed cluster: TLS and SCRAM from the settings', () => {
    const k = kafkaConfig(
      loadConfig({
        env: {
          KAFKA_BROKERS: 'b1:9096',
          KAFKA_SSL: 'true',
          KAFKA_SASL_MECHANISM: 'scram-sha-512',
          KAFKA_SASL_USERNAME: 'svc',
          KAFKA_SASL_PASSWORD: 'pw',
        },
      }),
    )
    expect(k.ssl).to.deep.equal({ rejectUnauthorized: true })
    expect(k.sasl).to.deep.equal({ mechanism: 'scram-sha-512', username: 'svc', password: 'pw' })
  })
})
