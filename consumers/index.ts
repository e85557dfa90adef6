export { sinkFactoryByType } from './sinks.ts'
export type { SinkFactories } from './sinks.ts'
