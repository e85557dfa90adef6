"""Confluent's own Python client (confluent-kafka) against Distributary's registry and topics.

  consume TOPIC      read the first message of TOPIC with AvroDeserializer; print it as JSON
  produce TOPIC      register a schema with SchemaRegistryClient and produce one message with
                     AvroSerializer; print {"id": schema id}
  produce-json TOPIC / consume-json TOPIC          the same with JSONSerializer / JSONDeserializer
  produce-protobuf TOPIC / consume-protobuf TOPIC  the same with ProtobufSerializer / ProtobufDeserializer
                     (the message class is built at run time from a FileDescriptorProto: no protoc)
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


def consume_first(read):
    """The first message of the topic, through read(msg)."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "confluent-check-" + topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            return read(msg)
    finally:
        consumer.close()
    sys.exit("no message within 60 s")


def produce_one(payload):
    producer = Producer({"bootstrap.servers": brokers})
    producer.produce(topic, value=payload)
    if producer.flush(30) != 0:
        sys.exit("message not delivered")
    print(json.dumps({"id": int.from_bytes(payload[1:5], "big")}))
    sys.exit(0)


if command == "consume":
    deserialize = AvroDeserializer(registry)
    key_and_value = consume_first(lambda msg: {
        "key": deserialize(msg.key(), SerializationContext(topic, MessageField.KEY)),
        "value": deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE)),
    })
    print(json.dumps(key_and_value, default=str))
    sys.exit(0)

if command == "produce":
    schema = json.dumps({
        "type": "record", "name": "StockPing", "namespace": "com.example.partner",
        "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "long"},
                   {"name": "note", "type": ["null", "string"], "default": None}],
    })
    serialize = AvroSerializer(registry, schema)
    produce_one(serialize({"sku": "SKU-PY", "qty": 42, "note": "from confluent-kafka"}, SerializationContext(topic, MessageField.VALUE)))


STOCK_PING_JSON = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#", "title": "StockPing", "type": "object",
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}, "note": {"type": ["null", "string"]}},
    "required": ["sku", "qty"],
})


def stock_ping_class():
    """example.partner.StockPing {string sku = 1; int64 qty = 2; string note = 3;}, without protoc."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    fdp = descriptor_pb2.FileDescriptorProto(name="stock_ping.proto", package="example.partner", syntax="proto3")
    msg = fdp.message_type.add(name="StockPing")
    F = descriptor_pb2.FieldDescriptorProto
    for name, number, kind in (("sku", 1, F.TYPE_STRING), ("qty", 2, F.TYPE_INT64), ("note", 3, F.TYPE_STRING)):
        msg.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL, json_name=name)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("example.partner.StockPing"))


if command == "produce-json":
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    serialize = JSONSerializer(STOCK_PING_JSON, registry)
    produce_one(serialize({"sku": "SKU-PY", "qty": 42, "note": "from confluent-kafka"}, SerializationContext(topic, MessageField.VALUE)))

if command == "consume-json":
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer
    value = consume_first(lambda msg: JSONDeserializer(None, schema_registry_client=registry)(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    print(json.dumps({"value": value}))
    sys.exit(0)

if command == "produce-protobuf":
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    StockPing = stock_ping_class()
    serialize = ProtobufSerializer(StockPing, registry, {"use.deprecated.format": False})
    produce_one(serialize(StockPing(sku="SKU-PY", qty=42, note="from confluent-kafka"), SerializationContext(topic, MessageField.VALUE)))

if command == "consume-protobuf":
    from google.protobuf import json_format
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
    StockPing = stock_ping_class()
    deserialize = ProtobufDeserializer(StockPing, {"use.deprecated.format": False}, schema_registry_client=registry)
    msg = consume_first(lambda m: deserialize(m.value(), SerializationContext(topic, MessageField.VALUE)))
    print(json.dumps({"value": json_format.MessageToDict(msg, preserving_proto_field_name=True)}))
    sys.exit(0)

sys.exit("usage: confluent_check.py consume|produce|consume-json|produce-json|consume-protobuf|produce-protobuf TOPIC")
