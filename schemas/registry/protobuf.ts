/* eslint-disable @typescript-eslint/no-explicit-any -- protobufjs' FileDescriptorProto.toObject gives untyped JSON */
/**
 * Protobuf for the registry (schemaType PROTOBUF), with protobufjs, as Confluent's registry treats it:
 *
 * - a schema is `.proto` text, or (as Confluent's Python and Go clients send it) the base64 of a
 *   serialized FileDescriptorProto, which is turned into `.proto` text; references are the schema's
 *   imports, each reference's `name` being the import path; google/protobuf/*.proto well-known types
 *   are built in, as in Confluent's registry;
 * - the stored text is the text as registered (Confluent reformats it with its own printer: see the
 *   docs); `format=serialized` answers the base64 FileDescriptorProto Confluent's clients ask for;
 * - the message indexes of Confluent's wire format are the path of a message type in its file
 *   (messageIndexes), the first message being [0];
 * - compatibility is Confluent's ProtobufSchema diff, ported below (protoSchemaDiff).
 */
import { createRequire } from 'node:module'
import protobuf from 'protobufjs'
import { errors } from './errors.ts'
import { visitReferences, type ReferenceLookup, type SchemaSource } from './avro.ts'

const require = createRequire(import.meta.url)
const descriptor = require('protobufjs/ext/descriptor') as {
  FileDescriptorProto: protobuf.Type
}

export interface CompiledProto {
  /** Every type of the schema and its references, resolved. */
  root: protobuf.Root
  /** The schema's own file: package, syntax, imports, and its message types in index order. */
  pkg: string
  syntax: 'proto2' | 'proto3'
  imports: string[]
  /** Top-level message types of the file, in declaration order (message index [i]). */
  messages: protobuf.Type[]
  enums: protobuf.Enum[]
  text: string
  /**
   * Where each type of a reference comes from (full name without the leading dot): the reference's
   * subject and version, and the package of its file. Types of the schema's own file are absent.
   */
  origins: Map<string, { ref: string; pkg: string }>
}

const WELL_KNOWN = /^google\/protobuf\/[a-z_]+\.proto$/

function isDescriptorBase64(text: string): boolean {
  return /^[A-Za-z0-9+/]+={0,2}$/.test(text.trim()) && !/\b(message|syntax|package)\b/.test(text)
}

/** `.proto` text of a base64 FileDescriptorProto (what Confluent's Python client registers). */
export function descriptorToText(b64: string): string {
  let fdp: Record<string, any>
  try {
    fdp = descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(Buffer.from(b64, 'base64')), {
      enums: String,
      longs: Number,
      defaults: false,
    }) as Record<string, any>
  } catch (err) {
    throw errors.invalidSchema(
      `not a valid Protobuf schema: neither .proto text nor a base64 FileDescriptorProto (${(err as Error).message})`,
    )
  }
  const lines: string[] = [`syntax = "${fdp.syntax === 'proto3' ? 'proto3' : 'proto2'}";`]
  const proto3 = fdp.syntax === 'proto3'
  if (fdp.package) lines.push(`package ${fdp.package};`)
  for (const d of fdp.dependency ?? []) lines.push(`import "${d}";`)
  const scalar: Record<string, string> = {
    TYPE_DOUBLE: 'double',
    TYPE_FLOAT: 'float',
    TYPE_INT64: 'int64',
    TYPE_UINT64: 'uint64',
    TYPE_INT32: 'int32',
    TYPE_FIXED64: 'fixed64',
    TYPE_FIXED32: 'fixed32',
    TYPE_BOOL: 'bool',
    TYPE_STRING: 'string',
    TYPE_BYTES: 'bytes',
    TYPE_UINT32: 'uint32',
    TYPE_SFIXED32: 'sfixed32',
    TYPE_SFIXED64: 'sfixed64',
    TYPE_SINT32: 'sint32',
    TYPE_SINT64: 'sint64',
  }
  const typeOf = (f: Record<string, any>) => scalar[f.type] ?? String(f.typeName)
  const writeEnum = (e: Record<string, any>, indent: string) => {
    lines.push(`${indent}enum ${e.name} {`)
    for (const v of e.value ?? []) lines.push(`${indent}  ${v.name} = ${v.number ?? 0};`)
    lines.push(`${indent}}`)
  }
  const writeMessage = (m: Record<string, any>, indent: string) => {
    lines.push(`${indent}message ${m.name} {`)
    const maps = new Map<string, Record<string, any>>()
    for (const n of m.nestedType ?? []) if (n.options?.mapEntry) maps.set(n.name, n)
    const oneofs: Array<Array<Record<string, any>>> = (m.oneofDecl ?? []).map(() => [])
    const fieldLine = (f: Record<string, any>, inOneof: boolean) => {
      const entry = f.typeName ? maps.get(String(f.typeName).split('.').pop()!) : undefined
      if (entry && f.label === 'LABEL_REPEATED') {
        const [k, v] = entry.field as Array<Record<string, any>>
        return `map<${typeOf(k!)}, ${typeOf(v!)}> ${f.name} = ${f.number};`
      }
      const label = inOneof
        ? ''
        : f.label === 'LABEL_REPEATED'
          ? 'repeated '
          : f.label === 'LABEL_REQUIRED'
            ? 'required '
            : f.proto3Optional || (!proto3 && f.label === 'LABEL_OPTIONAL')
              ? 'optional '
              : ''
      return `${label}${typeOf(f)} ${f.name} = ${f.number};`
    }
    for (const f of m.field ?? []) {
      if (f.oneofIndex !== undefined && !f.proto3Optional) oneofs[f.oneofIndex]!.push(f)
      else lines.push(`${indent}  ${fieldLine(f, false)}`)
    }
    oneofs.forEach((fields, i) => {
      if (fields.length === 0) return
      lines.push(`${indent}  oneof ${m.oneofDecl[i].name} {`)
      for (const f of fields) lines.push(`${indent}    ${fieldLine(f, true)}`)
      lines.push(`${indent}  }`)
    })
    for (const n of m.nestedType ?? []) if (!n.options?.mapEntry) writeMessage(n, indent + '  ')
    for (const e of m.enumType ?? []) writeEnum(e, indent + '  ')
    lines.push(`${indent}}`)
  }
  for (const m of fdp.messageType ?? []) writeMessage(m, '')
  for (const e of fdp.enumType ?? []) writeEnum(e, '')
  return lines.join('\n') + '\n'
}

function parseInto(text: string, root: protobuf.Root, what: string): protobuf.IParserResult {
  try {
    return protobuf.parse(text, root, { keepCase: true, alternateCommentMode: true })
  } catch (err) {
    throw errors.invalidSchema(`${what} is not a valid Protobuf schema: ${(err as Error).message}`)
  }
}

/** The schema text to store: `.proto` text as given, a base64 FileDescriptorProto turned into text. */
export function protoText(schema: string): string {
  return isDescriptorBase64(schema) ? descriptorToText(schema.trim()) : schema
}

/** Parses a Protobuf schema with its references (imports). Throws 42201 naming what is wrong. */
export function compileProto(source: SchemaSource, lookup: ReferenceLookup): CompiledProto {
  const text = protoText(source.schema)
  const root = new protobuf.Root()
  const seen = new Set<string>()
  const origins = new Map<string, { ref: string; pkg: string }>()
  visitReferences(
    source.references,
    lookup,
    (ref, target, key) => {
      seen.add(ref.name)
      const refText = protoText(target.schema)
      parseInto(refText, root, `referenced schema ${key} (${ref.name})`)
      // Which types this reference defines (the compatibility diff compares a type again when the
      // subject or version it comes from changes, as Confluent does).
      const alone = parseInto(refText, new protobuf.Root(), `referenced schema ${key} (${ref.name})`)
      const walk = (ns: protobuf.NamespaceBase) => {
        for (const x of ns.nestedArray) {
          if (x instanceof protobuf.Type || x instanceof protobuf.Enum)
            origins.set(x.fullName.slice(1), { ref: key, pkg: alone.package ?? '' })
          if (x instanceof protobuf.Namespace || x instanceof protobuf.Type) walk(x)
        }
      }
      walk(alone.root)
    },
    'name',
  )
  // The file alone: its package, imports and own types in declaration order (the message indexes).
  const own = parseInto(text, new protobuf.Root(), 'schema')
  const imports = [...(own.imports ?? []), ...(own.weakImports ?? [])]
  for (const imp of imports) {
    if (seen.has(imp)) continue
    const wk = WELL_KNOWN.test(imp) ? protobuf.common.get(imp) : undefined
    if (!wk)
      throw errors.invalidSchema(
        `import "${imp}" has no reference: add {"name": "${imp}", "subject": ..., "version": ...} to references`,
      )
    root.addJSON((wk as { nested: protobuf.INamespace['nested'] }).nested!)
    for (const name of Object.keys(
      (wk as { nested: { google: { nested: { protobuf: { nested: object } } } } }).nested.google.nested.protobuf.nested,
    ))
      origins.set(`google.protobuf.${name}`, { ref: imp, pkg: 'google.protobuf' })
    seen.add(imp)
  }
  parseInto(text, root, 'schema')
  try {
    root.resolveAll()
  } catch (err) {
    throw errors.invalidSchema(`not a valid Protobuf schema: ${(err as Error).message}`)
  }
  const pkg = own.package ?? ''
  const ownNs = (pkg ? own.root.lookup(pkg) : own.root) as protobuf.Namespace | null
  const inFile = (ownNs?.nestedArray ?? []).filter((x) => x instanceof protobuf.Type || x instanceof protobuf.Enum)
  const resolvedNs = (pkg ? root.lookup(pkg) : root) as protobuf.Namespace
  const messages = inFile.filter((x) => x instanceof protobuf.Type).map((x) => resolvedNs.lookupType(x.name))
  const enums = inFile.filter((x) => x instanceof protobuf.Enum).map((x) => resolvedNs.lookupEnum(x.name))
  if (messages.length === 0) throw errors.invalidSchema('a Protobuf schema needs at least one message type')
  const syntax = /^\s*syntax\s*=\s*["']proto3["']/m.test(text) ? 'proto3' : 'proto2'
  return { root, pkg, syntax, imports, messages, enums, text, origins }
}

/** The message index path of a message type of the file ([0] is its first message). */
export function messageIndexes(c: CompiledProto, type: protobuf.Type): number[] {
  const path: number[] = []
  let t: protobuf.ReflectionObject = type
  while (t.parent && t.parent instanceof protobuf.Type) {
    const parent: protobuf.Type = t.parent
    const child = t
    path.unshift(parent.nestedArray.filter((x) => x instanceof protobuf.Type).indexOf(child as protobuf.Type))
    t = parent
  }
  const top = c.messages.indexOf(t as protobuf.Type)
  if (top < 0) throw errors.invalidSchema(`message ${type.fullName.slice(1)} is not defined in this schema`)
  return [top, ...path]
}

/** The message type at an index path. */
export function messageAt(c: CompiledProto, indexes: number[]): protobuf.Type | undefined {
  let t: protobuf.Type | undefined = c.messages[indexes[0] ?? 0]
  for (const i of indexes.slice(1)) t = t?.nestedArray.filter((x): x is protobuf.Type => x instanceof protobuf.Type)[i]
  return t
}

const SCALARS: Record<string, number> = {
  double: 1,
  float: 2,
  int64: 3,
  uint64: 4,
  int32: 5,
  fixed64: 6,
  fixed32: 7,
  bool: 8,
  string: 9,
  bytes: 12,
  uint32: 13,
  sfixed32: 15,
  sfixed64: 16,
  sint32: 17,
  sint64: 18,
}

/**
 * The base64 FileDescriptorProto of the schema's file (format=serialized), with fully qualified type
 * names, map entries as protoc names them (<Field>Entry) and proto3 optional fields marked.
 */
export function serializedDescriptor(c: CompiledProto): string {
  const typeRef = (f: protobuf.Field) => (f.resolvedType ? '.' + f.resolvedType.fullName.slice(1) : undefined)
  const enumDesc = (e: protobuf.Enum) => ({
    name: e.name,
    value: Object.entries(e.values).map(([name, number]) => ({ name, number })),
  })
  const msgDesc = (t: protobuf.Type): Record<string, unknown> => {
    const nested: Array<Record<string, unknown>> = []
    const oneofs = t.oneofsArray
    const field = t.fieldsArray.map((f) => {
      const d: Record<string, unknown> = {
        name: f.name,
        number: f.id,
        jsonName: f.name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
      }
      if (f instanceof protobuf.MapField) {
        const entry = `${f.name.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase())}Entry`
        const value: Record<string, unknown> = { name: 'value', number: 2, label: 1 }
        if (f.resolvedType)
          Object.assign(value, { type: f.resolvedType instanceof protobuf.Enum ? 14 : 11, typeName: typeRef(f) })
        else value.type = SCALARS[f.type]
        nested.push({
          name: entry,
          field: [{ name: 'key', number: 1, label: 1, type: SCALARS[f.keyType] }, value],
          options: { mapEntry: true },
        })
        return { ...d, label: 3, type: 11, typeName: `${'.' + t.fullName.slice(1)}.${entry}` }
      }
      d.label = f.repeated ? 3 : f.required ? 2 : 1
      if (f.resolvedType)
        Object.assign(d, { type: f.resolvedType instanceof protobuf.Enum ? 14 : 11, typeName: typeRef(f) })
      else d.type = SCALARS[f.type]
      if (f.partOf) {
        d.oneofIndex = oneofs.indexOf(f.partOf)
        if (f.partOf.name.startsWith('_') && f.partOf.fieldsArray.length === 1 && c.syntax === 'proto3')
          d.proto3Optional = true
      }
      return d
    })
    for (const n of t.nestedArray) if (n instanceof protobuf.Type) nested.push(msgDesc(n))
    const out: Record<string, unknown> = {
      name: t.name,
      field,
      nestedType: nested,
      enumType: t.nestedArray.filter((n): n is protobuf.Enum => n instanceof protobuf.Enum).map(enumDesc),
    }
    if (oneofs.length > 0) out.oneofDecl = oneofs.map((o) => ({ name: o.name }))
    return out
  }
  const fdp = {
    name: 'schema.proto',
    package: c.pkg || undefined,
    dependency: c.imports,
    messageType: c.messages.map(msgDesc),
    enumType: c.enums.map(enumDesc),
    syntax: c.syntax,
  }
  const msg = descriptor.FileDescriptorProto.fromObject(fdp)
  return Buffer.from(descriptor.FileDescriptorProto.encode(msg).finish()).toString('base64')
}

/**
 * Protobuf compatibility as Confluent's registry defines it: a port of protobuf-provider's
 * `io.confluent.kafka.schemaregistry.protobuf.diff` package (SchemaDiff, MessageSchemaDiff,
 * FieldSchemaDiff, EnumSchemaDiff, Context) onto protobufjs's resolved types. `protoSchemaDiff(original,
 * update)` lists every Difference with its path (`#/Message/tag`); a change is compatible when all are
 * in PROTO_COMPATIBLE_CHANGES. BACKWARD compares original = the earlier version, update = the new one.
 */
export const PROTO_COMPATIBLE_CHANGES: ReadonlySet<string> = new Set([
  'MESSAGE_ADDED',
  'MESSAGE_MOVED',
  'ENUM_ADDED',
  'ENUM_REMOVED',
  'ENUM_CONST_ADDED',
  'ENUM_CONST_CHANGED',
  'ENUM_CONST_REMOVED',
  'FIELD_ADDED',
  'FIELD_REMOVED',
  'FIELD_NAME_CHANGED',
  'FIELD_STRING_OR_BYTES_LABEL_CHANGED',
  'ONEOF_ADDED',
  'ONEOF_REMOVED',
  'ONEOF_FIELD_ADDED',
  'ONEOF_FIELD_MOVED_TO_TOP_LEVEL',
])

export interface ProtoDifference {
  type: string
  path: string
}

class ProtoContext {
  readonly diffs: ProtoDifference[] = []
  constructor(
    readonly original: CompiledProto,
    readonly update: CompiledProto,
    private readonly path: string[],
    /** Messages being compared up the stack (Confluent's SchemaScope): recursion stops there. */
    readonly inProgress: Set<protobuf.Type>,
  ) {}
  /** A sub-context rooted at a type's local name (Confluent's setFullName). */
  rooted(name: string): ProtoContext {
    return new ProtoContext(this.original, this.update, name.split('.'), new Set(this.inProgress))
  }
  at<T>(segment: string, f: () => T): T {
    this.path.push(segment)
    try {
      return f()
    } finally {
      this.path.pop()
    }
  }
  add(type: string, ...segments: string[]): void {
    this.diffs.push({ type, path: '#/' + [...this.path, ...segments].join('/') })
  }
  compatible(): boolean {
    return this.diffs.every((d) => PROTO_COMPATIBLE_CHANGES.has(d.type))
  }
}

/** Every difference from `original` to `update` (Confluent's ProtobufSchema SchemaDiff.compare). */
export function protoSchemaDiff(original: CompiledProto, update: CompiledProto): ProtoDifference[] {
  const ctx = new ProtoContext(original, update, [], new Set())
  if (original.pkg !== update.pkg) ctx.add('PACKAGE_CHANGED')
  compareTypeElements(ctx, [...original.messages, ...original.enums], [...update.messages, ...update.enums])
  return ctx.diffs
}

/** Why data written with `writer` cannot be read with `reader` ("path: TYPE"; empty: it can). */
export function protoReadErrors(reader: CompiledProto, writer: CompiledProto): string[] {
  return protoSchemaDiff(writer, reader)
    .filter((d) => !PROTO_COMPATIBLE_CHANGES.has(d.type))
    .map((d) => `${d.path}: ${d.type}`)
}

function compareTypeElements(
  ctx: ProtoContext,
  original: protobuf.ReflectionObject[],
  update: protobuf.ReflectionObject[],
): void {
  const split = (list: protobuf.ReflectionObject[]) => {
    const messages = new Map<string, { t: protobuf.Type; index: number }>()
    const enums = new Map<string, protobuf.Enum>()
    for (const x of list) {
      if (x instanceof protobuf.Type) messages.set(x.name, { t: x, index: messages.size })
      else if (x instanceof protobuf.Enum) enums.set(x.name, x)
    }
    return { messages, enums }
  }
  const o = split(original)
  const u = split(update)
  for (const name of new Set([...o.messages.keys(), ...u.messages.keys()])) {
    ctx.at(name, () => {
      const om = o.messages.get(name)
      const um = u.messages.get(name)
      if (!um) return ctx.add('MESSAGE_REMOVED')
      if (!om) return ctx.add('MESSAGE_ADDED')
      compareMessage(ctx, om.t, um.t)
      // Moving a message is compatible: message indexes are read with the writer's schema.
      if (om.index !== um.index) ctx.add('MESSAGE_MOVED')
    })
  }
  for (const name of new Set([...o.enums.keys(), ...u.enums.keys()])) {
    ctx.at(name, () => {
      const oe = o.enums.get(name)
      const ue = u.enums.get(name)
      if (!ue) return ctx.add('ENUM_REMOVED')
      if (!oe) return ctx.add('ENUM_ADDED')
      const byTag = (e: protobuf.Enum) => new Map(Object.entries(e.values).map(([k, v]) => [v, k]))
      const ot = byTag(oe)
      const ut = byTag(ue)
      for (const tag of new Set([...ot.keys(), ...ut.keys()])) {
        if (!ut.has(tag)) ctx.add('ENUM_CONST_REMOVED', String(tag))
        else if (!ot.has(tag)) ctx.add('ENUM_CONST_ADDED', String(tag))
        else if (ot.get(tag) !== ut.get(tag)) ctx.add('ENUM_CONST_CHANGED', String(tag))
      }
    })
  }
}

/** A oneof as written (protobufjs models a proto3 `optional` field as a synthetic oneof: not one). */
const realOneof = (f: protobuf.Field): protobuf.OneOf | null =>
  f.partOf && !(f.options as Record<string, unknown> | undefined)?.proto3_optional ? f.partOf : null

function compareMessage(ctx: ProtoContext, original: protobuf.Type, update: protobuf.Type): void {
  if (!ctx.inProgress.has(original)) {
    ctx.inProgress.add(original)
    try {
      compareFields(ctx, original, update)
    } finally {
      ctx.inProgress.delete(original)
    }
  }
  const nested = (t: protobuf.Type) =>
    t.nestedArray.filter((x) => x instanceof protobuf.Type || x instanceof protobuf.Enum)
  compareTypeElements(ctx, nested(original), nested(update))
}

function compareFields(ctx: ProtoContext, original: protobuf.Type, update: protobuf.Type): void {
  const collect = (t: protobuf.Type) => {
    const byTag = new Map<number, protobuf.Field>()
    const tagToOneof = new Map<number, string>()
    const oneofs = new Map<string, protobuf.OneOf>()
    for (const f of t.fieldsArray) {
      byTag.set(f.id, f)
      const oo = realOneof(f)
      if (oo) {
        tagToOneof.set(f.id, oo.name)
        oneofs.set(oo.name, oo)
      }
    }
    return { byTag, tagToOneof, oneofs }
  }
  const o = collect(original)
  const u = collect(update)
  // A oneof removed with none of its members surviving anywhere is a complete (compatible) deletion.
  const deleted = new Set(
    [...o.oneofs]
      .filter(([name, oo]) => !u.oneofs.has(name) && !oo.fieldsArray.some((f) => u.byTag.has(f.id)))
      .map(([name]) => name),
  )
  // Newly mutually exclusive fields: an update oneof whose earlier members come from more than one
  // original group (an original oneof, or a top-level field each).
  for (const oo of u.oneofs.values()) {
    const groups = new Set<string>()
    let movedIn = 0
    for (const f of oo.fieldsArray) {
      if (o.tagToOneof.has(f.id)) groups.add(`oneof:${o.tagToOneof.get(f.id)}`)
      else if (o.byTag.has(f.id)) {
        groups.add(`field:${f.id}`)
        movedIn++
      }
    }
    if (groups.size > 1)
      ctx.add(movedIn > 1 ? 'MULTIPLE_FIELDS_MOVED_TO_ONEOF' : 'FIELD_MOVED_TO_EXISTING_ONEOF', oo.name)
  }
  for (const name of [...new Set([...o.oneofs.keys(), ...u.oneofs.keys()])].sort()) {
    if (!u.oneofs.has(name)) ctx.add('ONEOF_REMOVED', name)
    else if (!o.oneofs.has(name)) ctx.add('ONEOF_ADDED', name)
  }
  const label = (f: protobuf.Field, c: CompiledProto): string | null =>
    f.repeated && !(f instanceof protobuf.MapField)
      ? 'REPEATED'
      : f.required
        ? 'REQUIRED'
        : f instanceof protobuf.MapField || realOneof(f)
          ? null
          : (f.options as Record<string, unknown> | undefined)?.proto3_optional || c.syntax === 'proto2'
            ? 'OPTIONAL'
            : null
  for (const tag of [...new Set([...o.byTag.keys(), ...u.byTag.keys()])].sort((a, b) => a - b)) {
    const of = o.byTag.get(tag)
    const uf = u.byTag.get(tag)
    const oOneof = o.tagToOneof.get(tag)
    const uOneof = u.tagToOneof.get(tag)
    if (!uf) {
      if (oOneof !== undefined) {
        if (!deleted.has(oOneof)) ctx.add('ONEOF_FIELD_REMOVED', oOneof, String(tag))
      } else ctx.add(of!.required ? 'REQUIRED_FIELD_REMOVED' : 'FIELD_REMOVED', String(tag))
    } else if (!of) {
      if (uOneof !== undefined) ctx.add('ONEOF_FIELD_ADDED', uOneof, String(tag))
      else ctx.add(uf.required ? 'REQUIRED_FIELD_ADDED' : 'FIELD_ADDED', String(tag))
    } else {
      if (oOneof !== undefined && uOneof === undefined) ctx.add('ONEOF_FIELD_MOVED_TO_TOP_LEVEL', String(tag))
      const compareField = () => {
        if (of.name !== uf.name) ctx.add('FIELD_NAME_CHANGED')
        compareLabelsAndTypes(ctx, label(of, ctx.original), label(uf, ctx.update), typeOf(of), typeOf(uf))
      }
      if (uOneof !== undefined) ctx.at(uOneof, () => ctx.at(String(tag), compareField))
      else ctx.at(String(tag), compareField)
    }
  }
}

type ProtoType = { scalar: string } | { named: protobuf.Type | protobuf.Enum } | { key: ProtoType; value: ProtoType }
const typeOf = (f: protobuf.Field): ProtoType => {
  const value: ProtoType = f.resolvedType
    ? { named: f.resolvedType as protobuf.Type | protobuf.Enum }
    : { scalar: f.type }
  return f instanceof protobuf.MapField ? { key: { scalar: f.keyType }, value } : value
}
/** Confluent's kinds: an enum is a scalar (a varint on the wire). */
const kindOf = (t: ProtoType) =>
  'key' in t ? 'MAP' : 'named' in t && t.named instanceof protobuf.Type ? 'MESSAGE' : 'SCALAR'
/** Scalars whose wire encodings read each other's data (protobuf's "updating a message type" rules). */
const SCALAR_KINDS: Record<string, string> = {
  int32: 'GENERAL_NUMBER',
  int64: 'GENERAL_NUMBER',
  uint32: 'GENERAL_NUMBER',
  uint64: 'GENERAL_NUMBER',
  bool: 'GENERAL_NUMBER',
  sint32: 'SIGNED_NUMBER',
  sint64: 'SIGNED_NUMBER',
  string: 'STRING_OR_BYTES',
  bytes: 'STRING_OR_BYTES',
  fixed32: 'FIXED32',
  sfixed32: 'FIXED32',
  fixed64: 'FIXED64',
  sfixed64: 'FIXED64',
  float: 'FLOAT',
  double: 'DOUBLE',
}
const scalarKind = (t: ProtoType) =>
  'named' in t ? 'GENERAL_NUMBER' : 'scalar' in t ? SCALAR_KINDS[t.scalar] : undefined

function compareLabelsAndTypes(
  ctx: ProtoContext,
  oLabel: string | null,
  uLabel: string | null,
  o: ProtoType,
  u: ProtoType,
): void {
  const ok = kindOf(o)
  if (ok !== kindOf(u)) return ctx.add('FIELD_KIND_CHANGED')
  if (ok === 'SCALAR') {
    const sk = scalarKind(o)
    if (sk !== scalarKind(u)) return ctx.add('FIELD_SCALAR_KIND_CHANGED')
    // A label change (singular / repeated / required) re-encodes numbers (packed), not strings or bytes.
    if (oLabel !== null && uLabel !== null && oLabel !== uLabel) {
      if (sk === 'STRING_OR_BYTES') ctx.add('FIELD_STRING_OR_BYTES_LABEL_CHANGED')
      else ctx.add('FIELD_NUMERIC_LABEL_CHANGED')
    }
  } else if (ok === 'MAP') {
    const om = o as { key: ProtoType; value: ProtoType }
    const um = u as { key: ProtoType; value: ProtoType }
    compareLabelsAndTypes(ctx, null, null, om.key, um.key)
    compareLabelsAndTypes(ctx, null, null, om.value, um.value)
  } else {
    compareMessageTypes(ctx, (o as { named: protobuf.Type }).named, (u as { named: protobuf.Type }).named)
  }
}

function compareMessageTypes(ctx: ProtoContext, o: protobuf.Type, u: protobuf.Type): void {
  // Named types compare by their name within their file's package; the same name from another
  // subject or version (or moved between the file and a reference) is compared field by field.
  const where = (t: protobuf.Type, c: CompiledProto) => {
    const full = t.fullName.slice(1)
    const origin = c.origins.get(full) ?? { ref: '', pkg: c.pkg }
    return {
      local: origin.pkg && full.startsWith(origin.pkg + '.') ? full.slice(origin.pkg.length + 1) : full,
      ref: origin.ref,
    }
  }
  const ow = where(o, ctx.original)
  const uw = where(u, ctx.update)
  if (ow.local !== uw.local) return ctx.add('FIELD_NAMED_TYPE_CHANGED')
  if (ow.ref === uw.ref) return
  const sub = ctx.rooted(ow.local)
  compareMessage(sub, o, u)
  ctx.diffs.push(...sub.diffs)
  if (!sub.compatible()) ctx.add('FIELD_NAMED_TYPE_CHANGED')
}
