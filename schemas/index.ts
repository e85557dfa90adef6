export { CONTRACT_NAMES, contractSchema, releasedVersions, AVRO_DIR, RELEASED_DIR } from './contracts.ts'
export type { ContractName } from './contracts.ts'
export {
  TOPICS,
  ALL_TOPICS,
  DEAD_LETTERS,
  DEAD_LETTER_HEADER,
  deadLetterTopicConfig,
  ensureTopics,
  registerTopicSchemas,
  topicConfig,
  keySubject,
  valueSubject,
} from './topics.ts'
export type { TopicSpec, CleanupPolicy } from './topics.ts'
export {
  HEADER,
  AVRO_CONTENT_TYPE,
  envelope,
  toHeaders,
  fromHeaders,
  uuidv7,
  isUuidV7,
  newTraceparent,
  isTraceparent,
} from './headers.ts'
export type { EventEnvelope } from './headers.ts'
export * from './registry/index.ts'
export * from './serde/index.ts'
