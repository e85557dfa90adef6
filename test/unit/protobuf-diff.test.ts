/**
 * The Protobuf compatibility diff (protoSchemaDiff in schemas/registry/protobuf-diff.ts), a port of
 * Confluent's protobuf-provider diff: one test per rule family, asserting the Difference types and
 * paths Confluent reports and its verdict. Checked against Confluent's diff-schema-examples.json while
 * porting (all 54 identical).
 */
import { expect } from 'chai'
import { compileProto } from '../../schemas/registry/protobuf.ts'
import { PROTO_COMPATIBLE_CHANGES, protoSchemaDiff } from '../../schemas/registry/protobuf-diff.ts'
import type { Reference } from '../../schemas/registry/avro.ts'

const compile = (schema: string, deps: Record<string, string> = {}, version = 1) =>
  compileProto(
    { schema, references: Object.keys(deps).map((name): Reference => ({ name, subject: name, version })) },
    (r) => ({ schema: deps[r.name]!, references: [] }),
  )
const diff = (
  original: string,
  update: string,
  deps: [Record<string, string>, Record<string, string>] = [{}, {}],
  versions: [number, number] = [1, 1],
) => {
  const d = protoSchemaDiff(compile(original, deps[0], versions[0]), compile(update, deps[1], versions[1]))
  return {
    changes: d.map((x) => `${x.type} ${x.path}`),
    compatible: d.every((x) => PROTO_COMPATIBLE_CHANGES.has(x.type)),
  }
}
const p3 = (body: string, pkg = '') => `syntax = "proto3";\n${pkg ? `package ${pkg};\n` : ''}${body}`

describe('Protobuf compatibility (Confluent ProtobufSchema diff)', () => {
  it('enums: constants added, removed or renamed are compatible (ENUM_CONST_*), as are whole enums', () => {
    const e = (values: string) => p3(`message M { Status s = 1; }\nenum Status { ${values} }`)
    expect(diff(e('A = 0;'), e('A = 0; B = 1;'))).to.deep.equal({
      changes: ['ENUM_CONST_ADDED #/Status/1'],
      compatible: true,
    })
    expect(diff(e('A = 0; B = 1;'), e('A = 0;'))).to.deep.equal({
      changes: ['ENUM_CONST_REMOVED #/Status/1'],
      compatible: true,
    })
    expect(diff(e('A = 0; B = 1;'), e('A = 0; C = 1;'))).to.deep.equal({
      changes: ['ENUM_CONST_CHANGED #/Status/1'],
      compatible: true,
    })
    expect(diff(p3('message M { int32 s = 1; }'), e('A = 0;'))).to.deep.equal({
      changes: ['ENUM_ADDED #/Status'],
      compatible: true,
    })
  })

  it('fields: kind, scalar kind, named type, labels, required fields, names', () => {
    const m = (f: string) => p3(`message M { ${f} }\nmessage N { string a = 1; }\nmessage O { string a = 1; }`)
    expect(diff(m('int32 f = 1;'), m('int64 f = 1;'))).to.deep.equal({ changes: [], compatible: true })
    expect(diff(m('int32 f = 1;'), m('string f = 1;'))).to.deep.equal({
      changes: ['FIELD_SCALAR_KIND_CHANGED #/M/1'],
      compatible: false,
    })
    expect(diff(m('string f = 1;'), m('N f = 1;'))).to.deep.equal({
      changes: ['FIELD_KIND_CHANGED #/M/1'],
      compatible: false,
    })
    expect(diff(m('N f = 1;'), m('O f = 1;'))).to.deep.equal({
      changes: ['FIELD_NAMED_TYPE_CHANGED #/M/1'],
      compatible: false,
    })
    expect(diff(m('map<string, int32> f = 1;'), m('map<string, string> f = 1;')).changes).to.deep.equal([
      'FIELD_SCALAR_KIND_CHANGED #/M/1',
    ])
    expect(diff(m('string f = 1;'), m('string g = 1;'))).to.deep.equal({
      changes: ['FIELD_NAME_CHANGED #/M/1'],
      compatible: true,
    })
    // Labels: strings and bytes read repeated and singular alike, numbers do not (packed encoding).
    expect(diff(m('optional string f = 1;'), m('repeated string f = 1;'))).to.deep.equal({
      changes: ['FIELD_STRING_OR_BYTES_LABEL_CHANGED #/M/1'],
      compatible: true,
    })
    expect(diff(m('optional int32 f = 1;'), m('repeated int32 f = 1;'))).to.deep.equal({
      changes: ['FIELD_NUMERIC_LABEL_CHANGED #/M/1'],
      compatible: false,
    })
    // An enum is a scalar of the int32 group.
    expect(diff(p3('message M { int32 f = 1; }'), p3('message M { E f = 1; }\nenum E { A = 0; }')).compatible).to.equal(
      true,
    )
    const p2 = (f: string) => `syntax = "proto2";\nmessage M { ${f} }`
    expect(diff(p2('optional int32 a = 1;'), p2('optional int32 a = 1; required int32 b = 2;'))).to.deep.equal({
      changes: ['REQUIRED_FIELD_ADDED #/M/2'],
      compatible: false,
    })
    expect(diff(p2('optional int32 a = 1; required int32 b = 2;'), p2('optional int32 a = 1;'))).to.deep.equal({
      changes: ['REQUIRED_FIELD_REMOVED #/M/2'],
      compatible: false,
    })
    expect(diff(p2('optional int32 a = 1;'), p2('optional int32 a = 1; optional int32 b = 2;'))).to.deep.equal({
      changes: ['FIELD_ADDED #/M/2'],
      compatible: true,
    })
  })

  it('oneofs: fields added, removed, moved in and out, several fields moved into one', () => {
    const m = (body: string) => p3(`message M { ${body} }`)
    expect(diff(m('oneof o { string a = 1; }'), m('oneof o { string a = 1; int32 b = 2; }'))).to.deep.equal({
      changes: ['ONEOF_FIELD_ADDED #/M/o/2'],
      compatible: true,
    })
    expect(diff(m('oneof o { string a = 1; int32 b = 2; }'), m('oneof o { string a = 1; }'))).to.deep.equal({
      changes: ['ONEOF_FIELD_REMOVED #/M/o/2'],
      compatible: false,
    })
    expect(diff(m('string a = 1;'), m('oneof o { string a = 1; }'))).to.deep.equal({
      changes: ['ONEOF_ADDED #/M/o'],
      compatible: true,
    })
    expect(diff(m('oneof o { string a = 1; }'), m('string a = 1;'))).to.deep.equal({
      changes: ['ONEOF_REMOVED #/M/o', 'ONEOF_FIELD_MOVED_TO_TOP_LEVEL #/M/1'],
      compatible: true,
    })
    expect(diff(m('string a = 1; int32 b = 2;'), m('oneof o { string a = 1; int32 b = 2; }'))).to.deep.equal({
      changes: ['MULTIPLE_FIELDS_MOVED_TO_ONEOF #/M/o', 'ONEOF_ADDED #/M/o'],
      compatible: false,
    })
    expect(
      diff(m('string a = 1; oneof o { int32 b = 2; }'), m('oneof o { string a = 1; int32 b = 2; }')),
    ).to.deep.equal({ changes: ['FIELD_MOVED_TO_EXISTING_ONEOF #/M/o'], compatible: false })
    // A proto3 `optional` field is not a oneof, though protobufjs models it as one.
    expect(diff(m('string a = 1;'), m('optional string a = 1;')).compatible).to.equal(true)
  })

  it(
    'package and messages: PACKAGE_CHANGED; messages added, removed, moved ' + "(compatible: indexes are the writer's)",
    () => {
      expect(diff(p3('message M { string a = 1; }', 'a.b'), p3('message M { string a = 1; }', 'a.c'))).to.deep.equal({
        changes: ['PACKAGE_CHANGED #/'],
        compatible: false,
      })
      expect(
        diff(p3('message M { string a = 1; }'), p3('message N { string a = 1; }\nmessage M { string a = 1; }')),
      ).to.deep.equal({ changes: ['MESSAGE_MOVED #/M', 'MESSAGE_ADDED #/N'], compatible: true })
      expect(
        diff(p3('message M { string a = 1; }\nmessage N { string a = 1; }'), p3('message M { string a = 1; }')),
      ).to.deep.equal({ changes: ['MESSAGE_REMOVED #/N'], compatible: false })
      expect(
        diff(
          p3('message W { message M { string a = 1; } }'),
          p3('message W { message M { string a = 1; int32 b = 2; } }'),
        ).changes,
      ).to.deep.equal(['FIELD_ADDED #/W/M/2'])
    },
  )

  it('referenced types: compared again when their subject or version changes, or they move into an import', () => {
    const dep = (t: string) => ({ 'home.proto': p3(`message Home { ${t} id = 1; }`, 'x') })
    const user = p3('import "home.proto";\nmessage User { x.Home home = 1; }')
    expect(diff(user, user, [dep('int32'), dep('int32')])).to.deep.equal({ changes: [], compatible: true })
    expect(diff(user, user, [dep('int32'), dep('string')], [1, 2])).to.deep.equal({
      changes: ['FIELD_SCALAR_KIND_CHANGED #/Home/1', 'FIELD_NAMED_TYPE_CHANGED #/User/1'],
      compatible: false,
    })
    // Same subject and version: not compared again (Confluent trusts the registered version).
    expect(diff(user, user, [dep('int32'), dep('string')]).compatible).to.equal(true)
    // A message moved from the file into an import is removed from the file (MESSAGE_REMOVED).
    expect(
      diff(
        p3('message Home { int32 id = 1; }\nmessage User { Home home = 1; }', 'x'),
        p3('import "home.proto";\nmessage User { Home home = 1; }', 'x'),
        [{}, dep('int32')],
      ),
    ).to.deep.equal({ changes: ['MESSAGE_REMOVED #/Home', 'MESSAGE_MOVED #/User'], compatible: false })
  })
})
