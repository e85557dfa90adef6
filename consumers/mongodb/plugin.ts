/**
 * The MongoDB projection sink type: its config, checks and factory (consumers/plugin.ts).
 */
import { ConfigError, RetriableError, UrlRefusedError } from '../../common/errors.ts'
import type { FieldError } from '../../control-plane/errors.ts'
import type { MongoSink } from '../../control-plane/types.ts'
import { topicsOf } from '../../schemas/topics.ts'
import { sinkConfig, type SinkCheck, type SinkPlugin } from '../plugin.ts'
import { guardConnection, parseConnectionString } from './connection.ts'
import { MONGO_SECRET_PATHS, mongoSinkFactory } from './factory.ts'
import { mongoSinkConfigProblems } from './sink.ts'

/**
 * A MongoDB sink: its connection string parses and every host passes the SSRF guard (the worker
 * checks again when it connects), it is present unless kept from the previous mongodb sink, and
 * the subscription reads one topic (a projection collection holds one key space).
 */
async function validate(sink: MongoSink, check: SinkCheck): Promise<FieldError[]> {
  const errors: FieldError[] = []
  const topics = topicsOf(check.eventTypes, check.topics)
  for (const p of mongoSinkConfigProblems({ ...sink, connectionString: 'mongodb://placeholder' }))
    errors.push({ field: `sink.${p.field}`, message: p.message })
  if (topics.length > 1)
    errors.push({
      field: 'eventTypes',
      message:
        `a mongodb sink projects the keys of one topic; these event types come from ` +
        `${topics.join(', ')}: subscribe each topic into its own collection`,
    })
  const sent = check.sent as Partial<MongoSink> | undefined
  if (!sent) {
    // the stored string is sealed and was checked when it was saved
  } else if (typeof sent.connectionString !== 'string') {
    if (check.previous?.sink.type !== 'mongodb') errors.push({ field: 'sink.connectionString', message: 'is required' })
  } else {
    try {
      await guardConnection(parseConnectionString(sent.connectionString), check.guard)
    } catch (err) {
      // a host that does not resolve yet is accepted: the worker guards it again when it connects
      if (err instanceof RetriableError)
        check.logger.info('mongodb sink host does not resolve now; checked again at connect', { error: err })
      else if (err instanceof ConfigError || err instanceof UrlRefusedError)
        errors.push({ field: 'sink.connectionString', message: err.message.replace(/^sink\.connectionString /, '') })
      else throw err
    }
  }
  return errors
}

export const mongoPlugin: SinkPlugin<MongoSink> = {
  ...sinkConfig('mongodb', 'MongoSink', {
    required: ['database', 'collection'],
    properties: {
      connectionString: {
        type: 'string',
        pattern: '^mongodb(\\+srv)?://',
        maxLength: 4000,
        writeOnly: true,
        description:
          'Required on create; encrypted at rest, never returned. Every host (for ' +
          'mongodb+srv, every SRV target) must pass the SSRF guard: loopback, private, ' +
          'link-local and metadata addresses (every non-public range) are refused ' +
          'unless allowlisted; a host that does not resolve yet is accepted; a proxy ' +
          '(proxyHost) is refused. The worker connects only to addresses the guard ' +
          'approved for each connection.',
      },
      database: {
        type: 'string',
        minLength: 1,
        maxLength: 63,
        pattern: '^[^/\\\\. "$*<>:|?]+$',
        description: "The partner's database (MongoDB naming rules).",
      },
      collection: {
        type: 'string',
        minLength: 1,
        maxLength: 120,
        pattern: '^[^$]+$',
        description:
          "One document per key: _id = the event key, the value's fields, and _meta " +
          '(version = Kafka offset, topic, partition, eventId, eventType, occurredAt, ' +
          'writtenAt). Tombstones delete. A subscription with a mongodb sink reads one ' +
          'topic.',
      },
    },
  }),
  secretPaths: MONGO_SECRET_PATHS,
  // the connection string's hosts are guarded by validate (a connection string is no URL)
  urlPaths: [],
  validate,
  create: (rt) => mongoSinkFactory(rt.mongo, rt.secrets, rt.topics),
}
