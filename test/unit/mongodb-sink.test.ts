/**
 * The MongoDB sink's pure parts: error classification, credential scrubbing, configuration checks,
 * the version decision (the filter and its code twin agree), tombstones in the runtime's records.
 */
import { expect } from 'chai'
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb'
import { ConfigError, DataError, EndpointDisabledError, RetriableError, UrlRefusedError } from '../../common/errors.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { isTombstone, undeliverable } from '../../connectors/sink/records.ts'
import { DecodedMessage } from '../../connectors/sink/records.ts'
import {
  classifyMongoError,
  connectionSecrets,
  guardConnection,
  mongoSinkConfigProblems,
  parseConnectionString,
  projectedDocument,
  scrub,
  supersedes,
  type ProjectionMeta,
} from '../../consumers/mongodb/index.ts'
import { ALL_TOPICS, topicsOf } from '../../schemas/topics.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import type { KafkaMessage } from 'kafkajs'

const serverError = (code: number, message = 'boom', labels: string[] = []) => {
  const e = new MongoServerError({ ok: 0, code, errmsg: message, errorLabels: labels })
  return e
}

describe('MongoDB sink: error classification', () => {
  const ctx = { subscriptionId: 's1' }
  it('network failures, timeouts and stepping-down primaries are retriable', () => {
    expect(classifyMongoError(new MongoNetworkError('connection 1 closed'), 'write', ctx)).to.be.instanceOf(
      RetriableError,
    )
    expect(
      classifyMongoError(
        new MongoServerSelectionError('Server selection timed out', { error: undefined } as never),
        'connect',
        ctx,
      ),
    ).to.be.instanceOf(RetriableError)
    for (const code of [91, 189, 10107, 11600, 50, 16500])
      expect(classifyMongoError(serverError(code), 'write', ctx), String(code)).to.be.instanceOf(RetriableError)
    expect(classifyMongoError(serverError(123, 'x', ['RetryableWriteError']), 'write', ctx)).to.be.instanceOf(
      RetriableError,
    )
    expect(
      classifyMongoError(
        Object.assign(new Error('querySrv ENOTFOUND _mongodb._tcp.x'), { code: 'ENOTFOUND' }),
        'connect',
        ctx,
      ),
    ).to.be.instanceOf(RetriableError)
  })
  it('refused credentials: a ConfigError at start, an EndpointDisabledError (records held) on a write', () => {
    const start = classifyMongoError(serverError(18, 'Authentication failed.'), 'connect', ctx)
    expect(start).to.be.instanceOf(ConfigError)
    expect(start.context.field).to.equal('sink.connectionString')
    const write = classifyMongoError(serverError(13, 'not authorized on partner to execute command'), 'write', ctx)
    expect(write).to.be.instanceOf(EndpointDisabledError)
    expect((write as EndpointDisabledError).reason).to.equal('auth-failed')
  })
  it('a document the server or the driver refuses is a DataError', () => {
    expect(classifyMongoError(serverError(10334, 'BSONObjectTooLarge'), 'write', ctx)).to.be.instanceOf(DataError)
    expect(classifyMongoError(serverError(2, 'invalid key'), 'write', ctx)).to.be.instanceOf(DataError)
    expect(classifyMongoError(new RangeError('The value of "offset" is out of range'), 'write', ctx)).to.be.instanceOf(
      DataError,
    )
  })
  it('scrubs the connection string and its password from every message', () => {
    const cs = 'mongodb://bob:s%40cret-pw@h1:27017/'
    const secrets = connectionSecrets(cs)
    expect(secrets).to.include.members([cs, 's%40cret-pw', 's@cret-pw'])
    const err = classifyMongoError(new MongoNetworkError(`failed for ${cs} with s@cret-pw`), 'write', ctx, secrets)
    expect(err.message).to.not.contain('cret-pw')
    expect(scrub('a s@cret-pw b', secrets)).to.equal('a [redacted] b')
  })
})

describe('MongoDB sink: configuration', () => {
  it('names each field at fault', () => {
    expect(mongoSinkConfigProblems({ connectionString: 'mongodb://h/', database: 'd', collection: 'c' })).to.deep.equal(
      [],
    )
    const fields = mongoSinkConfigProblems({
      connectionString: 'http://h/',
      database: 'a/b',
      collection: 'system.profile',
    }).map((p) => p.field)
    expect(fields).to.deep.equal(['connectionString', 'database', 'collection'])
    expect(
      mongoSinkConfigProblems({ connectionString: 'mongodb://h/', database: 'x'.repeat(64), collection: 'a$b' }).map(
        (p) => p.field,
      ),
    ).to.deep.equal(['database', 'collection'])
  })
  it('parses with the driver and describes the target without credentials', () => {
    const p = parseConnectionString('mongodb://bob:pw123@h1:27018,h2/?replicaSet=rs')
    expect(p.display).to.equal('mongodb://h1:27018,h2:27017')
    expect(p.hasCredentials).to.equal(true)
    expect(() => parseConnectionString('mongodb://bob:pw123@'))
      .to.throw(ConfigError)
      .that.satisfies((e: Error) => !e.message.includes('pw123'))
  })
  it('guards every host, and every SRV target of mongodb+srv', async () => {
    const guard = createUrlGuard({ lookup: async () => [{ address: '93.184.215.14', family: 4 }] })
    await guardConnection(parseConnectionString('mongodb://db.example.com,8.8.8.8/'), guard)
    const err = await guardConnection(parseConnectionString('mongodb://db.example.com,10.0.0.1/'), guard).catch(
      (e: unknown) => e,
    )
    expect(err).to.be.instanceOf(UrlRefusedError)
    const srv = parseConnectionString('mongodb+srv://cluster0.example.net/')
    const refused = await guardConnection(srv, guard, async () => [{ name: '127.0.0.1', port: 27017 }]).catch(
      (e: unknown) => e,
    )
    expect(refused).to.be.instanceOf(UrlRefusedError)
    await guardConnection(srv, guard, async () => [{ name: 'shard-0.example.net', port: 27017 }])
  })
  it('a projection reads one topic', () => {
    expect(topicsOf(['deal.registered', 'deal.won'], ALL_TOPICS)).to.deep.equal(['deals.registrations'])
    expect(topicsOf(['deal.registered', 'inventory.level.changed'], ALL_TOPICS)).to.have.length(2)
  })
})

describe('MongoDB sink: versions and documents', () => {
  const m = (
    version: number,
    partition = 0,
    occurredAt = 1000,
  ): Pick<ProjectionMeta, 'version' | 'topic' | 'partition' | 'occurredAt'> => ({
    version,
    topic: 't',
    partition,
    occurredAt: new Date(occurredAt),
  })
  it(
    'within a topic-partition the offset decides; across partitions the event ' +
      'time; a foreign document is replaced',
    () => {
      expect(supersedes(m(5), undefined)).to.equal(true)
      expect(supersedes(m(5), m(4))).to.equal(true)
      expect(supersedes(m(5), m(5))).to.equal(false)
      expect(supersedes(m(5), m(9))).to.equal(false)
      expect(supersedes(m(1, 1, 2000), m(9, 0, 1000))).to.equal(true)
      expect(supersedes(m(99, 1, 500), m(9, 0, 1000))).to.equal(false)
      expect(supersedes(m(1), {})).to.equal(true)
    },
  )
  it(
    'builds the document from the value, with _id the key and _meta; reserved ' +
      'fields and non-records are DataErrors',
    () => {
      const meta = { ...m(3), eventId: 'e', eventType: 'x', writtenAt: new Date() }
      const rec = {
        topic: 't',
        partition: 0,
        offset: '3',
        key: 'K',
        value: { a: 1 },
        headers: {},
        eventId: 'e',
        eventType: 'x',
        timestamp: 0,
      }
      expect(projectedDocument(rec, meta)).to.deep.equal({ _id: 'K', a: 1, _meta: meta })
      expect(() => projectedDocument({ ...rec, value: { _meta: 1 } }, meta)).to.throw(DataError)
      expect(() => projectedDocument({ ...rec, value: [1] }, meta)).to.throw(DataError)
    },
  )
})

describe('sink records: tombstones', () => {
  const serde = { isLoaded: () => false, decodeSync: () => ({}) } as unknown as AvroSerde
  const message = (key: Buffer | null, value: Buffer | null): KafkaMessage =>
    ({ key, value, headers: {}, offset: '7', timestamp: '0', attributes: 0, size: 0 }) as unknown as KafkaMessage
  it('a keyed null value is a tombstone: poison for ordinary sinks, delivered to sinks that accept tombstones', () => {
    const r = new DecodedMessage(serde, 't', 0, message(Buffer.from('k'), null)).record()
    expect(isTombstone(r)).to.equal(true)
    expect(r.value).to.equal(null)
    expect(undeliverable(r, {})).to.be.instanceOf(DataError)
    expect(undeliverable(r, { acceptsTombstones: true })).to.equal(undefined)
    const unkeyed = new DecodedMessage(serde, 't', 0, message(null, null)).record()
    expect(isTombstone(unkeyed)).to.equal(false)
    expect(undeliverable(unkeyed, { acceptsTombstones: true })).to.be.instanceOf(DataError)
  })
})
