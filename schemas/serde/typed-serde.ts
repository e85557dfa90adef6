/**
 * JSON Schema and Protobuf in Confluent's wire format, beside AvroSerde (the event contracts stay Avro;
 * these are for schemas partners and publishers bring). Same shape as AvroSerde: schemas are loaded
 * from the registry once per id (with their references), `encodeSync`/`decodeSync` do no I/O.
 *
 * - JSON: magic byte 0, the schema id (4 bytes, big-endian), the UTF-8 JSON text. Encoding validates
 *   against the schema (as Confluent's serializer does by default): a value that does not fit is a
 *   DataError naming the paths; decoding validates too unless `validateOnDecode: false`.
 * - Protobuf: magic byte 0, the schema id, the message indexes (a zigzag varint count then each index
 *   as a zigzag varint; the first message of the file is the single byte 0), the Protobuf binary.
 */
import protobuf from 'protobufjs'
import { DataError } from '../../common/errors.ts'
import { compileJsonSchema, type CompiledJson } from '../registry/json-schema.ts'
import { compileProto, messageAt, messageIndexes, type CompiledProto } from '../registry/protobuf.ts'
import type { Reference } from '../registry/avro.ts'
import type { RegistryClient } from './client.ts'
import { AvroSerde, HEADER_SIZE, MAGIC_BYTE } from './serde.ts'

abstract class TypedSerde<C> {
  protected readonly schemas = new Map<number, C>()
  private readonly loading = new Map<number, Promise<C>>()
  private readonly ids = new Map<string, number>()

  constructor(
    readonly client: RegistryClient,
    private readonly schemaType: 'JSON' | 'PROTOBUF',
  ) {}

  protected abstract compile(
    schema: string,
    references: Reference[],
    lookup: (r: Reference) => { schema: string; references: Reference[] } | undefined,
  ): C

  /** Registers a schema under a subject (or finds it) and loads it; returns its id. Cached. */
  async register(subject: string, schema: string, references: Reference[] = []): Promise<number> {
    const key = `${subject}\u0000${schema}\u0000${JSON.stringify(references)}`
    let id = this.ids.get(key)
    if (id === undefined) {
      id = await this.client.registerTyped(subject, this.schemaType, schema, references)
      this.ids.set(key, id)
    }
    await this.load(id)
    return id
  }

  /** The compiled schema of an id, fetched (with its references) on first use. */
  async load(id: number): Promise<C> {
    const c = this.schemas.get(id)
    if (c) return c
    let p = this.loading.get(id)
    if (!p) {
      p = (async () => {
        const s = await this.client.schemaWithReferences(id)
        if (s.schemaType !== this.schemaType)
          throw new DataError(`schema ${id} is ${s.schemaType}, not ${this.schemaType}`, { schemaId: id })
        let compiled: C
        try {
          compiled = this.compile(s.schema, s.references, s.lookup)
        } catch (err) {
          throw new DataError(
            `schema ${id} cannot be compiled: ${(err as Error).message}`,
            { schemaId: id },
            { cause: err },
          )
        }
        this.schemas.set(id, compiled)
        return compiled
      })().finally(() => this.loading.delete(id))
      this.loading.set(id, p)
    }
    return p
  }

  protected loaded(id: number): C {
    const c = this.schemas.get(id)
    if (!c) throw new DataError(`schema ${id} is not loaded; call load(${id}) first`, { schemaId: id })
    return c
  }

  protected static header(id: number, body: Buffer | Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(HEADER_SIZE + body.length)
    out[0] = MAGIC_BYTE
    out.writeInt32BE(id, 1)
    out.set(body, HEADER_SIZE)
    return out
  }
}

export class JsonSerde extends TypedSerde<CompiledJson> {
  private readonly validateOnDecode: boolean

  constructor(client: RegistryClient, options: { validateOnDecode?: boolean } = {}) {
    super(client, 'JSON')
    this.validateOnDecode = options.validateOnDecode ?? true
  }

  protected compile(
    schema: string,
    references: Reference[],
    lookup: (r: Reference) => { schema: string; references: Reference[] } | undefined,
  ): CompiledJson {
    return compileJsonSchema({ schema, references }, lookup)
  }

  private check(id: number, c: CompiledJson, value: unknown, what: string): void {
    if (c.validate(value)) return
    const paths = (c.validate.errors ?? []).map(
      (e) => `${e.instancePath ?? e.dataPath ?? ''} ${e.message ?? ''}`.trim() || '(root)',
    )
    throw new DataError(`${what} does not match schema ${id}: ${paths.join(', ')}`, { schemaId: id, fields: paths })
  }

  encodeSync(id: number, value: unknown): Buffer {
    const c = this.loaded(id)
    this.check(id, c, value, 'value')
    return TypedSerde.header(id, Buffer.from(JSON.stringify(value), 'utf8'))
  }

  async encode(id: number, value: unknown): Promise<Buffer> {
    await this.load(id)
    return this.encodeSync(id, value)
  }

  decodeSync(buf: Buffer): unknown {
    const id = AvroSerde.schemaIdOf(buf)
    const c = this.loaded(id)
    let value: unknown
    try {
      value = JSON.parse(buf.toString('utf8', HEADER_SIZE))
    } catch (err) {
      throw new DataError(
        `message body is not JSON (schema ${id}): ${(err as Error).message}`,
        { schemaId: id },
        { cause: err },
      )
    }
    if (this.validateOnDecode) this.check(id, c, value, 'message')
    return value
  }

  async decode(buf: Buffer): Promise<unknown> {
    await this.load(AvroSerde.schemaIdOf(buf))
    return this.decodeSync(buf)
  }
}

/** Confluent's message-index prefix: [0] is the single byte 0, else a zigzag varint count and indexes. */
export function encodeMessageIndexes(indexes: number[]): Buffer {
  if (indexes.length === 1 && indexes[0] === 0) return Buffer.from([0])
  const bytes: number[] = []
  const varint = (n: number) => {
    let z = (n << 1) ^ (n >> 31)
    z >>>= 0
    while (z > 0x7f) {
      bytes.push((z & 0x7f) | 0x80)
      z >>>= 7
    }
    bytes.push(z)
  }
  varint(indexes.length)
  for (const i of indexes) varint(i)
  return Buffer.from(bytes)
}

/** Reads the message indexes at `offset`; returns them and the offset after them. */
export function decodeMessageIndexes(buf: Buffer, offset: number): { indexes: number[]; offset: number } {
  let at = offset
  const varint = (): number => {
    let result = 0
    let shift = 0
    for (;;) {
      if (at >= buf.length) throw new DataError('message indexes are truncated', {})
      const b = buf[at++]!
      result |= (b & 0x7f) << shift
      if ((b & 0x80) === 0) break
      shift += 7
      if (shift > 28) throw new DataError('message index varint is too long', {})
    }
    return (result >>> 1) ^ -(result & 1)
  }
  const count = varint()
  if (count === 0) return { indexes: [0], offset: at }
  if (count < 0 || count > 100) throw new DataError(`message index count ${count} is not valid`, {})
  const indexes: number[] = []
  for (let i = 0; i < count; i++) indexes.push(varint())
  return { indexes, offset: at }
}

export interface ProtobufDecoded {
  /** Full name of the message type (package included). */
  type: string
  value: Record<string, unknown>
}

interface ProtoTarget {
  type: protobuf.Type
  /** Its message indexes. */
  indexes: number[]
  /** Its full name without the leading dot. */
  name: string
}

interface ProtoWriter {
  compiled: CompiledProto
  /** The file's first message (index [0], the common case), and the targets by name asked, computed once. */
  first: ProtoTarget
  targets: Map<string, ProtoTarget>
  byType: Map<protobuf.Type, ProtoTarget>
}

function target(c: CompiledProto, type: protobuf.Type): ProtoTarget {
  return { type, indexes: messageIndexes(c, type), name: type.fullName.slice(1) }
}

const bswap32 = (n: number) => (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0

/**
 * The header written by the same protobufjs Writer as the body, so the message is built in one buffer:
 * magic 0 (a varint 0), the id big-endian (fixed32 is little-endian: byte-swapped), the indexes as
 * zigzag varints (sint32), [0] as the single byte 0.
 */
function headerWriter(id: number, indexes: number[]): protobuf.Writer {
  const w = protobuf.Writer.create()
  w.uint32(MAGIC_BYTE).fixed32(bswap32(id))
  if (indexes.length === 1 && indexes[0] === 0) w.uint32(0)
  else {
    w.sint32(indexes.length)
    for (const i of indexes) w.sint32(i)
  }
  return w
}

const NO_BYTES = Buffer.alloc(0)

export class ProtobufSerde extends TypedSerde<ProtoWriter> {
  private readonly toObject: protobuf.IConversionOptions
  /**
   * One reader for every decode, pointed at each message in turn: decoding is synchronous and never
   * re-entered, and protobufjs would otherwise allocate a reader per message. It lets go of the message
   * after each decode.
   */
  private readonly reader = protobuf.Reader.create(NO_BYTES)
  /** The schema of the last message decoded: consecutive messages mostly share one. */
  private lastId = -1
  private last: ProtoWriter | undefined

  /**
   * `toObject`: how decoded messages become plain objects (default: enums and 64-bit integers as strings, as JSON
   * mapping does).
   */
  constructor(client: RegistryClient, options: { toObject?: protobuf.IConversionOptions } = {}) {
    super(client, 'PROTOBUF')
    this.toObject = options.toObject ?? { enums: String, longs: String, bytes: String, defaults: false, oneofs: true }
  }

  protected compile(
    schema: string,
    references: Reference[],
    lookup: (r: Reference) => { schema: string; references: Reference[] } | undefined,
  ): ProtoWriter {
    const compiled = compileProto({ schema, references }, lookup)
    const first = target(compiled, compiled.messages[0]!)
    return { compiled, first, targets: new Map(), byType: new Map([[first.type, first]]) }
  }

  private targetOf(id: number, w: ProtoWriter, name: string | undefined): ProtoTarget {
    if (name === undefined) return w.first
    let t = w.targets.get(name)
    if (!t) {
      let type: protobuf.Type
      try {
        type = this.messageType(id, name)
      } catch (err) {
        throw new DataError(`schema ${id} has no message type ${name}: ${(err as Error).message}`, { schemaId: id })
      }
      t = w.byType.get(type) ?? target(w.compiled, type)
      w.byType.set(type, t)
      w.targets.set(name, t)
    }
    return t
  }

  /** The message type to write: by name (full, or relative to the package), default the file's first message. */
  messageType(id: number, name?: string): protobuf.Type {
    const w = this.loaded(id)
    if (name === undefined) return w.compiled.messages[0]!
    const full = name.startsWith('.')
      ? name
      : w.compiled.pkg && !name.startsWith(`${w.compiled.pkg}.`)
        ? `${w.compiled.pkg}.${name}`
        : name
    const t = w.compiled.root.lookupType(full)
    return t
  }

  /**
   * Encodes a value of a message type (default: the file's first message). A message instance of that
   * type (made with create/fromObject/decode, as Confluent's serializers take typed messages) is
   * written as it is. A plain object is checked with protobufjs's verify and written as it is; when it
   * holds enum names or 64-bit integers as decimal strings (the Protobuf JSON mapping), it is converted
   * with fromObject and verified again.
   */
  encodeSync(id: number, value: Record<string, unknown> | protobuf.Message, messageName?: string): Buffer {
    const w = this.loaded(id)
    const t = this.targetOf(id, w, messageName)
    if (value instanceof t.type.ctor) return t.type.encode(value, headerWriter(id, t.indexes)).finish() as Buffer
    let message: Record<string, unknown> | protobuf.Message = value
    let why = t.type.verify(value)
    if (why && /integer\|Long expected|enum value expected/.test(why)) {
      message = t.type.fromObject(value)
      why = t.type.verify(message)
    }
    if (why) throw new DataError(`value does not match message ${t.name} of schema ${id}: ${why}`, { schemaId: id })
    return t.type.encode(message, headerWriter(id, t.indexes)).finish() as Buffer
  }

  async encode(id: number, value: Record<string, unknown> | protobuf.Message, messageName?: string): Promise<Buffer> {
    await this.load(id)
    return this.encodeSync(id, value, messageName)
  }

  decodeSync(buf: Buffer): ProtobufDecoded {
    if (buf.length < HEADER_SIZE || buf[0] !== MAGIC_BYTE) AvroSerde.schemaIdOf(buf) // throws the DataError
    const id = buf.readInt32BE(1)
    let w = this.last
    if (id !== this.lastId || !w) {
      w = this.loaded(id)
      this.last = w
      this.lastId = id
    }
    let t: ProtoTarget | undefined
    let offset: number
    if (buf[HEADER_SIZE] === 0) {
      // The first message of the file: the single index byte 0 (the common case, no allocation).
      t = w.first
      offset = HEADER_SIZE + 1
    } else {
      const read = decodeMessageIndexes(buf, HEADER_SIZE)
      offset = read.offset
      const type = messageAt(w.compiled, read.indexes)
      if (!type)
        throw new DataError(`message indexes [${read.indexes.join(', ')}] name no message type of schema ${id}`, {
          schemaId: id,
        })
      t = w.byType.get(type)
      if (!t) {
        t = target(w.compiled, type)
        w.byType.set(type, t)
      }
    }
    const reader = this.reader
    reader.buf = buf
    reader.pos = offset
    reader.len = buf.length
    try {
      return { type: t.name, value: t.type.toObject(t.type.decode(reader), this.toObject) }
    } catch (err) {
      throw new DataError(
        `message body does not decode as ${t.name} (schema ${id}): ${(err as Error).message}`,
        { schemaId: id },
        { cause: err },
      )
    } finally {
      reader.buf = NO_BYTES
      reader.len = 0
    }
  }

  async decode(buf: Buffer): Promise<ProtobufDecoded> {
    await this.load(AvroSerde.schemaIdOf(buf))
    return this.decodeSync(buf)
  }
}
