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
 * - compatibility is Confluent's ProtobufSchema diff, ported in protobuf-diff.ts (protoSchemaDiff).
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
