export { KafkaTopicSink } from './sink.ts'
export type { KafkaTopicSinkConfig, PartnerTopicWriter } from './sink.ts'
export { kafkaTopicSinkFactory, kafkaTopicSinkConfig, SharedPartnerTopicWriter } from './factory.ts'
export { projectSchema } from './schema-projection.ts'
