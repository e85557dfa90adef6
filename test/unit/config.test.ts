import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { ConfigError } from '../../common/errors.ts'
import { kafkaBrokers, loadConfig, localControllerPorts, mongoUri } from '../../config/index.ts'
import { configSchema } from '../../config/schema.ts'

function fails(env: Record<string, string>): ConfigError {
  try {
    loadConfig({ env })
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`)
}

describe('configuration', () => {
  it('defaults to the local stack on 127.0.0.1', () => {
    const c = loadConfig({ env: {} })
    expect(c.http).to.deep.equal({ host: '127.0.0.1', port: 8080 })
    expect(kafkaBrokers(c)).to.deep.equal(['127.0.0.1:9092'])
    expect(mongoUri(c)).to.equal('mongodb://127.0.0.1:27017/')
  })

  it('uses external servers when KAFKA_BROKERS / MONGODB_URI are set', () => {
    const c = loadConfig({
      env: { KAFKA_BROKERS: 'b1:9092, b2:9093', MONGODB_URI: 'mongodb+srv://u:p@cluster0.example.net/?tls=true' },
    })
    expect(kafkaBrokers(c)).to.deep.equal(['b1:9092', 'b2:9093'])
    expect(mongoUri(c)).to.equal('mongodb+srv://u:p@cluster0.example.net/?tls=true')
  })

  it(
    'STACK_KAFKA_BROKERS=3: the platform uses three local brokers on consecutive ' + 'ports, controllers after them',
    () => {
      const c = loadConfig({ env: { STACK_KAFKA_BROKERS: '3' } })
      expect(kafkaBrokers(c)).to.deep.equal(['127.0.0.1:9092', '127.0.0.1:9093', '127.0.0.1:9094'])
      expect(localControllerPorts(c)).to.deep.equal([9095, 9096, 9097])
      expect(localControllerPorts(loadConfig({ env: {} })), 'one node: the controller port of old').to.deep.equal([
        9093,
      ])
      const moved = loadConfig({
        env: { STACK_KAFKA_BROKERS: '3', STACK_KAFKA_PORT: '19092', STACK_KAFKA_CONTROLLER_PORT: '19192' },
      })
      expect(kafkaBrokers(moved)).to.deep.equal(['127.0.0.1:19092', '127.0.0.1:19093', '127.0.0.1:19094'])
      expect(localControllerPorts(moved)).to.deep.equal([19192, 19193, 19194])
      expect(
        kafkaBrokers(loadConfig({ env: { STACK_KAFKA_BROKERS: '3', KAFKA_BROKERS: 'b1:9092' } })),
        'an external cluster wins',
      ).to.deep.equal(['b1:9092'])
    },
  )

  it('refuses a local Kafka size other than 1 or 3, and controller ports among the broker ports', () => {
    expect(fails({ STACK_KAFKA_BROKERS: '2' }).message).to.contain(
      'stack.kafka.brokers (env STACK_KAFKA_BROKERS): must be 1 or 3',
    )
    const clash = fails({ STACK_KAFKA_BROKERS: '3', STACK_KAFKA_CONTROLLER_PORT: '9093' })
    expect(clash.message).to.contain('stack.kafka.controllerPort (env STACK_KAFKA_CONTROLLER_PORT)')
    expect(clash.message).to.contain('9093, 9094, 9095')
    expect(fails({ STACK_KAFKA_PORT: '65535', STACK_KAFKA_BROKERS: '3' }).message).to.contain('at most 65535')
  })

  it('an invalid value fails naming the key, its variable and the allowed values', () => {
    const err = fails({ LOG_LEVEL: 'verbose' })
    expect(err.message).to.contain('log.level (env LOG_LEVEL)')
    expect(err.message).to.contain('"debug","info","warn","error"')
    expect(fails({ HTTP_PORT: '99999' }).message).to.contain('http.port (env HTTP_PORT)')
    expect(fails({ KAFKA_BROKERS: 'no-port' }).message).to.contain('kafka.brokers (env KAFKA_BROKERS)')
    expect(fails({ KAFKA_SASL_MECHANISM: 'gssapi' }).message).to.contain('kafka.sasl.mechanism')
  })

  it('reads an on/off setting as written (0 is off), and refuses any other text naming it', () => {
    for (const [text, on] of [
      ['false', false],
      ['0', false],
      ['no', false],
      ['OFF', false],
      ['true', true],
      ['1', true],
      [' yes ', true],
      ['on', true],
    ] as const)
      expect(loadConfig({ env: { WORKER_LOG_DELIVERED: text } }).worker.logDelivered, text).to.equal(on)
    expect(loadConfig({ env: {} }).worker.logDelivered, 'the default').to.equal(true)
    const err = fails({ WORKER_LOG_DELIVERED: 'sometimes' })
    expect(err.message).to.contain('worker.logDelivered (env WORKER_LOG_DELIVERED)')
    expect(err.message).to.contain('must be true or false')
  })

  it('an unknown DISTRIBUTARY_* variable fails naming it', () => {
    expect(fails({ DISTRIBUTARY_KAFKA_BROKER: 'x:1' }).message).to.contain('DISTRIBUTARY_KAFKA_BROKER')
  })

  it('an unknown key in the config file fails naming the key', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-')), 'config.json')
    fs.writeFileSync(file, JSON.stringify({ http: { port: 8088, prot: 1 } }))
    const err = fails({ DISTRIBUTARY_CONFIG: file })
    expect(err.message).to.contain('http.prot')
    fs.writeFileSync(file, JSON.stringify({ http: { port: 8088 } }))
    expect(loadConfig({ env: { DISTRIBUTARY_CONFIG: file } }).http.port).to.equal(8088)
  })

  it('SASL needs a user name and a password', () => {
    const err = fails({ KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'svc' })
    expect(err.message).to.contain('KAFKA_SASL_PASSWORD')
  })

  it('never shows a secret in an error message', () => {
    const err = fails({ MONGODB_URI: 'postgres://admin:hunter2@db' })
    expect(err.message).to.contain('mongodb.uri (env MONGODB_URI)')
    expect(err.message).to.not.contain('hunter2')
  })

  it('every setting has a doc string, an environment variable and a default', () => {
    const walk = (node: Record<string, unknown>, at: string) => {
      for (const [k, v] of Object.entries(node)) {
        const here = at ? `${at}.${k}` : k
        if (v && typeof v === 'object' && 'default' in v) {
          const s = v as { doc?: string; env?: string }
          expect(s.doc, `${here} doc`).to.be.a('string').and.not.equal('')
          expect(s.env, `${here} env`).to.match(/^[A-Z][A-Z0-9_]+$/)
        } else walk(v as Record<string, unknown>, here)
      }
    }
    walk(configSchema, '')
  })
})
