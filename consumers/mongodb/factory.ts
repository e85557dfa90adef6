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
import type { ControlPlane } from '../../control-plane/service.ts'
import type { SubscriptionDoc } from '../../control-plane/types.ts'
import type { TopicSpec } from '../../schemas/topics.ts'
import type { MongoClientPool } from './client-pool.ts'
import { MongoProjectionSink, type MongoSinkConfig } from './sink.ts'

/** The topics a set of event types (or topic names) is read from. */
export function topicsOf(eventTypes: readonly string[], topics: readonly TopicSpec[]): string[] {
  const out = new Set<string>()
  for (const t of eventTypes) {
    const spec = topics.find((s) => s.name === t || s.eventTypes.includes(t))
    if (spec) out.add(spec.name)
  }
  return [...out]
}

export function mongoSinkConfig(sub: SubscriptionDoc, controlPlane: ControlPlane, topics: readonly TopicSpec[]): MongoSinkConfig {
  if (sub.sink.type !== 'mongodb') throw new ConfigError(`subscription ${sub._id} has a ${sub.sink.type} sink, not mongodb`, { subscriptionId: sub._id })
  const read = topicsOf(sub.eventTypes, topics)
  if (read.length > 1) {
    throw new ConfigError(`mongodb subscription ${sub._id} reads ${read.length} topics (${read.join(', ')}): a projection collection holds the keys of one topic; subscribe each topic into its own collection`, {
      subscriptionId: sub._id,
      field: 'eventTypes',
    })
  }
  const sink = controlPlane.openSink(sub.sink)
  if (sink.type !== 'mongodb') throw new ConfigError('unreachable')
  return { connectionString: sink.connectionString, database: sink.database, collection: sink.collection }
}

/** A SinkFactory (connectors/sink/worker.ts) for mongodb subscriptions. */
export function mongoSinkFactory(pool: MongoClientPool, controlPlane: ControlPlane, topics: readonly TopicSpec[]) {
  return async (sub: SubscriptionDoc, ctx: SinkContext): Promise<SinkConnector<unknown>> => {
    const sink = new MongoProjectionSink(pool)
    await sink.start(mongoSinkConfig(sub, controlPlane, topics), ctx)
    return sink as SinkConnector<unknown>
  }
}
