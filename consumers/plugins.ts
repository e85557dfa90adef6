/**
 * The sink types a subscription can name (`sink.type`), one plug-in record each (consumers/plugin.ts),
 * as producers/plugins.ts lists the source kinds. The control plane, the API document and the runtime
 * ask this registry; a new sink type is a folder under consumers/ and a line here.
 */
import { ConfigError } from '../common/errors.ts'
import type { SinkFactory } from '../connectors/sink/types.ts'
import { kafkaTopicPlugin } from './kafka-topic/plugin.ts'
import { mongoPlugin } from './mongodb/plugin.ts'
import type { SinkPlugin, SinkRuntime, SinkType } from './plugin.ts'
import { restPlugin } from './rest/plugin.ts'
import { sinkFactoryByType } from './sinks.ts'
import { webhookPlugin } from './webhook/plugin.ts'

/** In the order the API document lists them (the `Sink` schema's oneOf). */
export const SINK_PLUGINS: Readonly<Record<SinkType, SinkPlugin>> = {
  webhook: webhookPlugin,
  rest: restPlugin,
  mongodb: mongoPlugin,
  'kafka-topic': kafkaTopicPlugin,
}

export const SINK_TYPES = Object.keys(SINK_PLUGINS) as SinkType[]

/** The record of a sink type; a ConfigError naming `sink.type` for a type this platform does not have. */
export function sinkPlugin(type: string): SinkPlugin {
  const plugin = (SINK_PLUGINS as Record<string, SinkPlugin | undefined>)[type]
  if (!plugin)
    throw new ConfigError(`no sink of type "${type}" (known: ${SINK_TYPES.join(', ')})`, { field: 'sink.type' })
  return plugin
}

/** The worker's SinkFactory: each subscription's sink built by the record of its type. */
export function sinkFactory(runtime: SinkRuntime): SinkFactory {
  return sinkFactoryByType(Object.fromEntries(SINK_TYPES.map((type) => [type, SINK_PLUGINS[type].create(runtime)])))
}
