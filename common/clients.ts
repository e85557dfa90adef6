/**
 * The MongoDB client built from the configuration (the Kafka client is common/kafka/client.ts), so that
 * every part of the platform connects the same way to the local store or to a managed one.
 */
import { MongoClient } from 'mongodb'
import { mongoUri, type AppConfig } from '../config/index.ts'

export function createMongoClient(config: AppConfig): MongoClient {
  return new MongoClient(mongoUri(config), {
    serverSelectionTimeoutMS: config.mongodb.serverSelectionTimeoutMs,
    maxPoolSize: Math.max(1, config.mongodb.maxPoolSize),
    appName: config.kafka.clientId,
  })
}
