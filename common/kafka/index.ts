/**
 * The platform's one door to Kafka (docs/kafka-client.md). Runtime code imports kafkajs through this
 * module only (test/unit/house.test.ts checks it), so that a change of client, or of how clients are
 * made, is made here:
 *
 * - client.ts: the client from the configuration (brokers, TLS, SASL, timeouts) logging through the
 *   platform's logger; it installs the three patches of kafkajs 2.2.4's internals below;
 * - encoder.ts: produce requests encoded from pooled buffers (the same bytes, tested against the stock
 *   encoder in test/unit/kafkajs-encoder.test.ts);
 * - decoder.ts: fetched records' headers decoded without a copy of the object per header (the same records,
 *   tested against the stock decoder in test/unit/kafkajs-decoder.test.ts);
 * - timeouts.ts: no timer armed with a negative delay (Node 24's TimeoutNegativeWarning; tested in
 *   test/unit/kafkajs-timeouts.test.ts);
 * - partitioner.ts: the Java client's murmur2 partitions, computed without Long (tested against
 *   kafkajs' DefaultPartitioner in test/unit/kafkajs-partitioner.test.ts);
 * - admin.ts: topics created and waited for until their leaders serve, replication for the cluster;
 * - scram.ts: SCRAM credentials (KIP-554), which kafkajs' admin lacks, over its broker connection.
 *
 * The producer, consumer and admin made here carry the platform's defaults: topics are never created
 * by a produce or a fetch (they are created with their settings by schemas/topics.ts), and every
 * producer partitions keys as the Java client does, so that a key lands on the same partition whoever
 * writes it (Confluent's clients, Kafka Connect, the platform).
 */
import kafkajs from 'kafkajs'
import type { Admin, AdminConfig, Consumer, ConsumerConfig, Kafka, Producer, ProducerConfig } from 'kafkajs'
import { KeyHashPartitioner } from './partitioner.ts'

export { createKafka, kafkaConfig, kafkaLogCreator } from './client.ts'
export { KeyHashPartitioner, murmur2 } from './partitioner.ts'
export { createTopicsReady, replicationFor, waitForTopicLeaders, withClusterReplication } from './admin.ts'
export {
  KafkaScramAdmin,
  SCRAM_MAX_ITERATIONS,
  SCRAM_MIN_ITERATIONS,
  saltedPassword,
  ScramAdminError,
  type ScramCredentialInfo,
  type ScramDeletion,
  type ScramMechanism,
  type ScramUpsert,
} from './scram.ts'
export type {
  AclEntry,
  Admin,
  Consumer,
  EachBatchPayload,
  IHeaders,
  ITopicConfig,
  Kafka,
  KafkaConfig,
  KafkaMessage,
  Message,
  Producer,
  RecordMetadata,
  TopicMessages,
} from 'kafkajs'

// kafkajs is CommonJS; Node's ESM named-export detection does not find all of its exports (the
// bundle needs the default import), so the values are read from it here, once.
export const { Kafka: KafkaClient, logLevel } = kafkajs
export const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs

/** Producer options the platform sets per use; the partitioner and topic creation are fixed here. */
export type ProducerOptions = Omit<ProducerConfig, 'createPartitioner' | 'allowAutoTopicCreation'>

/** A producer with the platform's defaults: the Java client's partitions, no topic created by a send. */
export function createProducer(kafka: Kafka, options: ProducerOptions = {}): Producer {
  return kafka.producer({ ...options, allowAutoTopicCreation: false, createPartitioner: KeyHashPartitioner })
}

/** A consumer with the platform's defaults: no topic created by a fetch. */
export function createConsumer(kafka: Kafka, options: Omit<ConsumerConfig, 'allowAutoTopicCreation'>): Consumer {
  return kafka.consumer({ ...options, allowAutoTopicCreation: false })
}

/** An admin client (its own connections: see consumers/kafka-topic/factory.ts for why that matters). */
export function createAdmin(kafka: Kafka, options?: AdminConfig): Admin {
  return kafka.admin(options)
}
