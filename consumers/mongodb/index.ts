export {
  MongoProjectionSink,
  mongoSinkConfigProblems,
  projectedDocument,
  supersedeFilter,
  supersedes,
  META_FIELD,
} from './sink.ts'
export type {
  MongoSinkConfig,
  ProjectionMeta,
  ProjectedDocument,
  ProjectionCollection,
  WriteOutcome,
  FieldProblem as MongoFieldProblem,
} from './sink.ts'
export { MongoClientPool, DEFAULT_MONGO_SINK_CLIENT } from './client-pool.ts'
export type { MongoClientPoolOptions, MongoLease, MongoSinkClientSettings } from './client-pool.ts'
export {
  parseConnectionString,
  guardConnection,
  guardHost,
  guardedMongoClient,
  connectionSecrets,
  scrub,
} from './connection.ts'
export type { ParsedConnection, SrvResolver, GuardedMongoClient } from './connection.ts'
export { classifyMongoError, isAuthError, isDuplicateKeyError } from './errors.ts'
export type { MongoPhase } from './errors.ts'
export { mongoSinkFactory, mongoSinkConfig, MONGO_SECRET_PATHS } from './factory.ts'
