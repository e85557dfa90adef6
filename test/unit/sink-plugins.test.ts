import { expect } from 'chai'
import { createLogger } from '../../common/logger.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { openApiDocument } from '../../api/openapi/document.ts'
import type { SinkCheck } from '../../consumers/plugin.ts'
import { SINK_PLUGINS, SINK_TYPES, sinkPlugin } from '../../consumers/plugins.ts'
import { openSecrets, sealSecrets, withoutSecrets } from '../../consumers/secrets.ts'
import type { SinkConfig } from '../../control-plane/types.ts'
import { ALL_TOPICS } from '../../schemas/topics.ts'

const box = { seal: (v: string) => `sealed(${v})`, open: (v: string) => v.replace(/^sealed\((.*)\)$/, '$1') }

function check(o: Partial<SinkCheck> = {}): SinkCheck {
  return {
    eventTypes: ['inventory.level.changed'],
    sent: undefined,
    topics: ALL_TOPICS,
    guard: createUrlGuard(),
    logger: createLogger({ level: 'error' }),
    partnerKafka: { topicPrefix: 'partner.' },
    ...o,
  }
}
const fields = (errors: Array<{ field: string }>) => errors.map((e) => e.field)

describe('sink plug-ins (consumers/plugins.ts)', () => {
  it('register every sink type once, and the API document lists each config schema under its name', () => {
    expect(SINK_TYPES).to.deep.equal(['webhook', 'rest', 'mongodb', 'kafka-topic'])
    const schemas = openApiDocument.components.schemas as Record<string, unknown>
    for (const type of SINK_TYPES) {
      const plugin = SINK_PLUGINS[type]
      expect(plugin.type).to.equal(type)
      expect(schemas[plugin.schemaName]).to.deep.equal(plugin.schema)
      expect((plugin.schema as { properties: { type: unknown } }).properties.type).to.deep.equal({ const: type })
    }
    expect((schemas.Sink as { oneOf: unknown[] }).oneOf).to.have.length(SINK_TYPES.length)
  })

  it('refuse a type no plug-in has, naming sink.type', () => {
    expect(() => sinkPlugin('ftp')).to.throw(/no sink of type "ftp"/)
  })

  it("seal a sink's secrets, keep those left out from the stored sink, open them, and leave them out of views", () => {
    const paths = sinkPlugin('rest').secretPaths
    const sent = {
      type: 'rest',
      url: 'https://crm.example/x',
      method: 'POST',
      auth: { type: 'oauth2', clientId: 'id', clientSecret: 's3' },
    } as SinkConfig
    const sealed = sealSecrets(sent, paths, box)
    expect((sealed as { auth: Record<string, unknown> }).auth.clientSecret).to.equal('sealed(s3)')
    const changed = sealSecrets(
      { ...sent, auth: { type: 'oauth2', clientId: 'id2' } } as SinkConfig,
      paths,
      box,
      sealed,
    )
    expect((changed as { auth: Record<string, unknown> }).auth).to.deep.equal({
      type: 'oauth2',
      clientId: 'id2',
      clientSecret: 'sealed(s3)',
    })
    expect(openSecrets(changed, paths, box)).to.deep.include({
      auth: { type: 'oauth2', clientId: 'id2', clientSecret: 's3' },
    })
    const view = withoutSecrets(changed, paths)
    expect(view.set).to.deep.equal(['auth.clientSecret'])
    expect((view.config as { auth: Record<string, unknown> }).auth).to.deep.equal({ type: 'oauth2', clientId: 'id2' })
  })

  it('check a REST sink that is sent, not one kept as stored', async () => {
    const bad = { type: 'rest', url: 'ftp://x', method: 'GET' } as unknown as SinkConfig
    expect(fields(await sinkPlugin('rest').validate(bad, check({ sent: bad })))).to.include.members([
      'sink.url',
      'sink.method',
    ])
    expect(await sinkPlugin('rest').validate(bad, check())).to.deep.equal([])
  })

  it('check a MongoDB sink: its fields, one topic, and a connection string on create', async () => {
    const sink = { type: 'mongodb', database: 'a/b', collection: 'c' } as SinkConfig
    const errors = await sinkPlugin('mongodb').validate(
      sink,
      check({ sent: sink, eventTypes: ['inventory.level.changed', 'deal.registered'] }),
    )
    expect(fields(errors)).to.deep.equal(['sink.database', 'eventTypes', 'sink.connectionString'])
    const kept = await sinkPlugin('mongodb').validate(
      { ...sink, database: 'b' } as SinkConfig,
      check({
        sent: { ...sink, database: 'b' } as SinkConfig,
        previous: {
          sink: { type: 'mongodb', connectionString: 'sealed', database: 'a', collection: 'c' },
          eventTypes: ['inventory.level.changed'],
        },
      }),
    )
    expect(kept).to.deep.equal([])
  })

  it(
    'check a kafka-topic sink: partner Kafka access, one topic, a topic name, and ' +
      'no rename or other source topic later',
    async () => {
      const kt = sinkPlugin('kafka-topic')
      const sink = { type: 'kafka-topic' } as SinkConfig
      expect(fields(await kt.validate(sink, check({ sent: sink, partnerKafka: undefined })))).to.deep.equal([
        'sink.type',
      ])
      expect(
        fields(
          await kt.validate(sink, check({ sent: sink, eventTypes: ['inventory.level.changed', 'deal.registered'] })),
        ),
      ).to.deep.equal(['eventTypes'])
      expect(
        fields(
          await kt.validate(
            { type: 'kafka-topic', name: '.hidden' },
            check({ sent: { type: 'kafka-topic', name: '.hidden' } }),
          ),
        ),
      ).to.deep.equal(['sink.name'])
      const stored = { type: 'kafka-topic', topic: 'partner.acme.inventory.levels' } as SinkConfig
      const previous = { sink: stored, eventTypes: ['inventory.level.changed'] }
      expect(
        fields(await kt.validate(stored, check({ sent: { type: 'kafka-topic', name: 'stock' }, previous }))),
      ).to.deep.equal(['sink.name'])
      expect(fields(await kt.validate(stored, check({ eventTypes: ['deal.registered'], previous })))).to.deep.equal([
        'eventTypes',
      ])
      expect(
        await kt.validate(stored, check({ sent: { type: 'kafka-topic', name: 'inventory.levels' }, previous })),
      ).to.deep.equal([])
      expect(kt.fixed).to.equal(true)
    },
  )
})
