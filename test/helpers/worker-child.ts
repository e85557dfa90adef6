/**
 * A sink worker in a child process, for crash tests (kill -9) and for workers sharing subscriptions.
 * argv[2]: JSON { dbName, registryUrl, encryptionKeys, topic, settings }. Prints `worker-ready`.
 */
import { createMongoClient } from '../../common/clients.ts'
import { createKafka } from '../../common/kafka/index.ts'
import { createLogger } from '../../common/logger.ts'
import { createSecretBox, parseKeyRing } from '../../common/secret-box.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { deliveryDefaults } from '../../connectors/sink/settings.ts'
import { SinkWorker } from '../../connectors/sink/worker.ts'
import { WebhookClient, webhookSinkFactory } from '../../consumers/webhook/index.ts'
import { sinkFactoryByType } from '../../consumers/index.ts'
import { kafkaTopicSinkFactory, SharedPartnerTopicWriter } from '../../consumers/kafka-topic/index.ts'
import { ControlPlane } from '../../control-plane/service.ts'
import { loadConfig } from '../../config/index.ts'
import { AvroSerde, RegistryClient } from '../../schemas/index.ts'

const args = JSON.parse(process.argv[2]!)
const config = loadConfig()
const logger = createLogger({
  level: process.env.DEBUG_CHILD ? 'info' : 'warn',
  write: (l) => process.stderr.write(l + '\n'),
})
const mongo = createMongoClient(config)
await mongo.connect()
const db = mongo.db(args.dbName)
const guard = createUrlGuard({ allowlist: '127.0.0.1' })
const cp = new ControlPlane({
  db,
  box: createSecretBox(parseKeyRing(args.encryptionKeys)),
  urlGuard: guard,
  logger,
  bootstrapKey: '',
  apiKeyCacheMs: 1000,
  idempotencyTtlSeconds: 60,
})
const client = new WebhookClient({ guard })
const serde = new AvroSerde(new RegistryClient({ url: args.registryUrl }))
// kafka-topic subscriptions too (partner topics): one shared writer, as a platform worker has
const partnerTopics = new SharedPartnerTopicWriter(
  createKafka(config, undefined, `worker-child-${process.pid}-partner-topics`),
  serde,
  logger,
)
const worker = new SinkWorker({
  kafka: createKafka(config, undefined, `worker-child-${process.pid}`),
  controlPlane: cp,
  db,
  serde,
  topics: [args.topic],
  createSink: sinkFactoryByType({
    webhook: webhookSinkFactory(client, cp, 2000),
    'kafka-topic': kafkaTopicSinkFactory(partnerTopics, [args.topic]),
  }),
  defaults: deliveryDefaults(config),
  logger,
  settings: args.settings,
})
await worker.start()
process.stdout.write('worker-ready\n')
process.once('SIGTERM', () => {
  void worker
    .stop()
    .then(() => partnerTopics.close())
    .finally(() => process.exit(0))
})
