export { MongoDbSource, mongoSourceConfigSchema, parseMongoSourceConfig } from './source.ts'
export type { MongoSourceConfig } from './source.ts'
