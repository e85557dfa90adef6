export { sinkFactoryByType } from './sinks.ts'
export type { SinkFactories } from './sinks.ts'
export { SINK_PLUGINS, SINK_TYPES, sinkPlugin, sinkFactory } from './plugins.ts'
export type { SinkCheck, SinkControl, SinkPlugin, SinkRuntime, SinkSecrets, SinkType } from './plugin.ts'
