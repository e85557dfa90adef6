/**
 * The kafka-topic sink type (docs/partner-topics.md): its config, checks and factory, and the partner
 * topic it keeps beside its subscription (consumers/plugin.ts).
 */
import { ConflictError, isDuplicateKey, RequestInvalidError, type FieldError } from '../../control-plane/errors.ts'
import { PARTNER_TOPIC_NAME, partnerNames } from '../../control-plane/partner-kafka.ts'
import type { KafkaTopicSink } from '../../control-plane/types.ts'
import { topicsOf } from '../../schemas/topics.ts'
import { sinkConfig, type SinkCheck, type SinkControl, type SinkPlugin } from '../plugin.ts'
import { kafkaTopicSinkFactory } from './factory.ts'

const NAME_RULE = 'must be 1 to 200 letters, digits, ".", "_" or "-", not starting with "."'

/**
 * A new kafka-topic subscription needs partners' Kafka access and reads one topic (the partner topic
 * mirrors it: partitions, compaction, per-key order). A subscription keeps its topic: no change of
 * name or source topic (a change of sink type is refused as for every `fixed` type).
 */
function validate(stored: KafkaTopicSink, check: SinkCheck): FieldError[] {
  const sent = check.sent?.type === 'kafka-topic' ? check.sent : undefined
  const read = topicsOf(check.eventTypes, check.topics)
  const previous = check.previous
  if (!previous) {
    const errors: FieldError[] = []
    if (!check.partnerKafka)
      errors.push({
        field: 'sink.type',
        message:
          'this installation gives partners no Kafka access ' +
          '(KAFKA_PARTNER_BOOTSTRAP_SERVERS is not set and the local stack is not used)',
      })
    if (read.length !== 1)
      errors.push({
        field: 'eventTypes',
        message:
          `a kafka-topic subscription reads one topic; these event types are in ` +
          `${read.length} (${read.join(', ')}): subscribe each topic in its own ` +
          `subscription`,
      })
    const name = stored.name ?? read[0]
    if (name !== undefined && !PARTNER_TOPIC_NAME.test(name)) errors.push({ field: 'sink.name', message: NAME_RULE })
    return errors
  }
  const source = topicsOf(previous.eventTypes, check.topics)
  // the name in force: the one set at creation, else the source topic's (a name sent again is fine)
  if (sent && sent.name !== undefined && sent.name !== (stored.name ?? source[0])) {
    return [
      {
        field: 'sink.name',
        message: `the partner topic (${stored.topic}) cannot be renamed; create a new subscription`,
      },
    ]
  }
  if (read.length !== 1 || read[0] !== source[0]) {
    return [
      {
        field: 'eventTypes',
        message:
          `a kafka-topic subscription reads one topic, ${source[0]}, for good; these ` +
          `event types are in ${read.join(', ') || 'no topic'}`,
      },
    ]
  }
  return []
}

/**
 * A kafka-topic subscription's topic: `<prefix><partner slug>.<sink.name, or the source topic>`,
 * reserved in partnerTopics (its _id is the name, so no two subscriptions write one topic).
 */
async function reserve(
  sink: KafkaTopicSink,
  sub: { id: string; partnerId: string; eventTypes: readonly string[] },
  control: SinkControl,
): Promise<KafkaTopicSink> {
  const source = topicsOf(sub.eventTypes)[0]!
  const org = await control.cols.organizations.findOne({ _id: sub.partnerId }, { projection: { slug: 1 } })
  const topic = `${partnerNames(control.partnerKafka!.topicPrefix, org!.slug).topicPrefix}${sink.name ?? source}`
  if (topic.length > 249)
    throw new RequestInvalidError([
      { field: 'sink.name', message: `makes the topic name ${topic.length} characters long; Kafka allows 249` },
    ])
  try {
    await control.cols.partnerTopics.insertOne({
      _id: topic,
      partnerId: sub.partnerId,
      subscriptionId: sub.id,
      sourceTopic: source,
      createdAt: new Date(),
    })
  } catch (err) {
    if (isDuplicateKey(err))
      throw new ConflictError(
        `another subscription of the partner writes topic ${topic}; choose another sink.name`,
        'sink.name',
      )
    throw err
  }
  return { ...sink, topic }
}

async function release(subscriptionId: string, control: SinkControl): Promise<string[]> {
  const topics = (await control.cols.partnerTopics.find({ subscriptionId }).toArray()).map((t) => t._id)
  await control.cols.partnerTopics.deleteMany({ subscriptionId })
  return topics
}

export const kafkaTopicPlugin: SinkPlugin<KafkaTopicSink> = {
  ...sinkConfig('kafka-topic', 'KafkaTopicSink', {
    required: [],
    description:
      "A topic of the partner's own on the platform's Kafka cluster, read with its " +
      'SCRAM credentials (GET /organizations/{id}/kafka-access). The subscription ' +
      'reads one topic; the partner topic mirrors its partitions and compaction, ' +
      'carries the records in Avro (Confluent wire format) in the pinned schema ' +
      'version, projected and filtered by the grants, and tombstones.',
    properties: {
      name: {
        type: 'string',
        minLength: 1,
        maxLength: 200,
        pattern: '^[A-Za-z0-9_-][A-Za-z0-9._-]*$',
        description:
          'What follows `<prefix><partner slug>.` in the topic name. Default: the ' +
          "source topic's name. Fixed once created.",
      },
      topic: {
        type: 'string',
        readOnly: true,
        description: 'The partner topic, e.g. partner.northwind.inventory.levels.',
      },
    },
  }),
  secretPaths: [],
  urlPaths: [],
  fixed: true,
  partnerAccess: true,
  validate,
  reserve,
  release,
  create: (rt) => kafkaTopicSinkFactory(rt.partnerTopics, rt.topics),
}
