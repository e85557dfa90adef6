import protobuf from 'protobufjs'
import type { CompiledProto } from './protobuf.ts'
import { DiffPath, type Difference } from './diff-path.ts'

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

export type ProtoDifference = Difference

class ProtoContext extends DiffPath {
  constructor(
    readonly original: CompiledProto,
    readonly update: CompiledProto,
    path: string[],
    /** Messages being compared up the stack (Confluent's SchemaScope): recursion stops there. */
    readonly inProgress: Set<protobuf.Type>,
  ) {
    super(path)
  }
  /** A sub-context rooted at a type's local name (Confluent's setFullName). */
  rooted(name: string): ProtoContext {
    return new ProtoContext(this.original, this.update, name.split('.'), new Set(this.inProgress))
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
  byName(ctx, 'MESSAGE', o.messages, u.messages, (om, um) => {
    compareMessage(ctx, om.t, um.t)
    // Moving a message is compatible: message indexes are read with the writer's schema.
    if (om.index !== um.index) ctx.add('MESSAGE_MOVED')
  })
  byName(ctx, 'ENUM', o.enums, u.enums, (oe, ue) => {
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

/** Each name either side has, at its path: `<kind>_REMOVED` or `<kind>_ADDED` when one lacks it, else `both`. */
function byName<T>(
  ctx: ProtoContext,
  kind: 'MESSAGE' | 'ENUM',
  original: Map<string, T>,
  update: Map<string, T>,
  both: (original: T, update: T) => void,
): void {
  for (const name of new Set([...original.keys(), ...update.keys()])) {
    ctx.at(name, () => {
      const o = original.get(name)
      const u = update.get(name)
      if (!u) return ctx.add(`${kind}_REMOVED`)
      if (!o) return ctx.add(`${kind}_ADDED`)
      both(o, u)
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
