"""A partner's view of its own Kafka topic, with Confluent's own Python client (confluent-kafka).

  consume TOPIC COUNT   read COUNT messages of TOPIC (group GROUP) with SCRAM-SHA-512 credentials and
                        AvroDeserializer through the registry with the same credentials; print
                        {"records": [{"key", "value"}]} (a tombstone's value is null)
  try TOPIC             subscribe and poll for a few seconds; print {"error": "<Kafka error name>"}
                        for the first error (e.g. TOPIC_AUTHORIZATION_FAILED), or {"error": null}
Environment: BROKERS, USERNAME, PASSWORD, GROUP, REGISTRY_URL.
"""
import json
import os
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

command, topic = sys.argv[1], sys.argv[2]
conf = {
    "bootstrap.servers": os.environ["BROKERS"],
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": os.environ["USERNAME"],
    "sasl.password": os.environ["PASSWORD"],
    "group.id": os.environ["GROUP"],
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
}
errors = []
conf["error_cb"] = lambda err: errors.append(err)
consumer = Consumer(conf)
consumer.subscribe([topic])

if command == "consume":
    count = int(sys.argv[3])
    registry = SchemaRegistryClient({"url": os.environ["REGISTRY_URL"], "basic.auth.user.info": os.environ["USERNAME"] + ":" + os.environ["PASSWORD"]})
    deserialize = AvroDeserializer(registry)
    out = []
    try:
        for _ in range(120):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                sys.exit("consume failed: " + msg.error().name())
            value = None if msg.value() is None else deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
            out.append({"key": deserialize(msg.key(), SerializationContext(topic, MessageField.KEY)), "value": value})
            if len(out) >= count:
                break
    finally:
        consumer.close()
    if len(out) < count:
        sys.exit("only %d of %d messages within 120 s" % (len(out), count))
    print(json.dumps({"records": out}, default=str))
    sys.exit(0)

if command == "try":
    found = None
    try:
        for _ in range(15):
            msg = consumer.poll(1.0)
            if errors:
                found = errors[0].name()
                break
            if msg is not None and msg.error():
                found = msg.error().name()
                break
    except KafkaException as e:
        found = e.args[0].name()
    finally:
        try:
            consumer.close()
        except KafkaException as e:
            found = found or e.args[0].name()
    print(json.dumps({"error": found}))
    sys.exit(0)

sys.exit("unknown command " + command)
