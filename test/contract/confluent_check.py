"""Confluent's own Python client (confluent-kafka) against Distributary's registry and topics.

  consume TOPIC      read the first message of TOPIC with AvroDeserializer; print it as JSON
  produce TOPIC      register a schema with SchemaRegistryClient and produce one message with
                     AvroSerializer; print {"id": schema id}
Environment: BROKERS, REGISTRY_URL, REGISTRY_AUTH ("user:password", sent as basic.auth.user.info).
"""
import json
import os
import sys

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

brokers = os.environ["BROKERS"]
registry_conf = {"url": os.environ["REGISTRY_URL"]}
if os.environ.get("REGISTRY_AUTH"):
    registry_conf["basic.auth.user.info"] = os.environ["REGISTRY_AUTH"]
registry = SchemaRegistryClient(registry_conf)
command, topic = sys.argv[1], sys.argv[2]

if command == "consume":
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "confluent-check-" + topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            value = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
            key = deserialize(msg.key(), SerializationContext(topic, MessageField.KEY))
            print(json.dumps({"key": key, "value": value}, default=str))
            sys.exit(0)
    finally:
        consumer.close()
    sys.exit("no message within 60 s")

if command == "produce":
    schema = json.dumps({
        "type": "record", "name": "StockPing", "namespace": "com.example.partner",
        "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "long"},
                   {"name": "note", "type": ["null", "string"], "default": None}],
    })
    serialize = AvroSerializer(registry, schema)
    producer = Producer({"bootstrap.servers": brokers})
    payload = serialize({"sku": "SKU-PY", "qty": 42, "note": "from confluent-kafka"}, SerializationContext(topic, MessageField.VALUE))
    producer.produce(topic, value=payload)
    if producer.flush(30) != 0:
        sys.exit("message not delivered")
    print(json.dumps({"id": int.from_bytes(payload[1:5], "big")}))
    sys.exit(0)

sys.exit("usage: confluent_check.py consume|produce TOPIC")
