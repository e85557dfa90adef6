/**
 * The MongoDB sink as the sink worker builds it for a subscription: the connection string opened
 * from the key ring (it is sealed at rest), the shared client of that string from the pool.
 *
 * A subscription of this sink reads ONE topic: the collection holds one key space, its `_id` is the
 * key, and versions (offsets) compare within a topic-partition; two topics could carry the same
 * key text and would then write one document from two lanes at once (see sink.ts, the guard).
 */
import { ConfigError } from '../../common/errors.ts'
import type { SinkConnector, SinkContext } from '../../connectors/sink/types.ts'
import type { MongoSink, SubscriptionDoc } from '../../control-plane/types.ts'
import { topicsOf, type TopicSpec } from '../../schemas/topics.ts'
import { openSecrets, type SinkSecrets } from '../secrets.ts'
import type { MongoClientPool } from './client-pool.ts'
import { MongoProjectionSink, type MongoSinkConfig } from './sink.ts'

/** Settings of a MongoDB sink that are secrets: sealed at rest, never returned. */
export const MONGO_SECRET_PATHS = ['connectionString'] as const

export function mongoSinkConfig(
  sub: SubscriptionDoc,
  secrets: SinkSecrets,
  topics: readonly TopicSpec[],
): MongoSinkConfig {
  if (sub.sink.type !== 'mongodb')
    throw new ConfigError(`subscription ${sub._id} has a ${sub.sink.type} sink, not mongodb`, {
      subscriptionId: sub._id,
    })
  const read = topicsOf(sub.eventTypes, topics)
  if (read.length > 1) {
    throw new ConfigError(
      `mongodb subscription ${sub._id} reads ${read.length} topics ` +
        `(${read.join(', ')}): a projection collection holds the keys of one topic; ` +
        `subscribe each topic into its own collection`,
      {
        subscriptionId: sub._id,
        field: 'eventTypes',
      },
    )
  }
  const sink = openSecrets<MongoSink>(sub.sink, MONGO_SECRET_PATHS, secrets.box)
  return { connectionString: sink.connectionString, database: sink.database, collection: sink.collection }
}

/** A SinkFactory (connectors/sink/types.ts) for mongodb subscriptions. */
export function mongoSinkFactory(pool: MongoClientPool, secrets: SinkSecrets, topics: readonly TopicSpec[]) {
  return async (sub: SubscriptionDoc, ctx: SinkContext): Promise<SinkConnector<unknown>> => {
    const sink = new MongoProjectionSink(pool)
    await sink.start(mongoSinkConfig(sub, secrets, topics), ctx)
    return sink as SinkConnector<unknown>
  }
}
