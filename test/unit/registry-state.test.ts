/**
 * The replay rule of the schema log (schemas/registry/state.ts), on hand-written logs: the first
 * record that claims an id, a schema or a slot wins, identically on every replay, also after
 * compaction (which keeps only the last record per key).
 */
import { expect } from 'chai'
import { RegistryState, configKey, deleteSubjectKey, schemaKey, schemaValue } from '../../schemas/registry/state.ts'
import { SchemaRegistryService, type SchemaLog } from '../../schemas/registry/registry.ts'

const S = (n: string) => JSON.stringify({ type: 'record', name: n, fields: [{ name: 'f', type: 'string' }] })
const rec = (subject: string, version: number, id: number, schema: string, deleted = false): [string, string] => [
  schemaKey(subject, version),
  schemaValue({ subject, version, id, schemaType: 'AVRO', schema, deleted }),
]
function replay(log: Array<[string, string | null]>): RegistryState {
  const st = new RegistryState()
  for (const [k, v] of log) st.apply(k, v, 1)
  return st
}
function compactLog(log: Array<[string, string | null]>): Array<[string, string | null]> {
  const last = new Map<string, number>()
  log.forEach(([k], i) => last.set(k, i))
  return log.filter(([k], i) => last.get(k) === i)
}

describe('registry state replay', () => {
  it('an id claimed twice for different schemas goes to the first record; the loser is ignored', () => {
    const st = replay([rec('a', 1, 1, S('A')), rec('b', 1, 1, S('B'))])
    expect(st.schemas.get(1)!.schema).to.equal(S('A'))
    expect(st.versionsOf('b')).to.deep.equal([])
    expect(st.rejected).to.equal(1)
  })

  it('a slot claimed twice goes to the first; the repair record keeps the winner after compaction', () => {
    const log: Array<[string, string | null]> = [
      rec('s', 1, 1, S('A')),
      rec('s', 1, 2, S('B')),
      rec('s', 1, 1, S('A')),
      rec('s', 2, 2, S('B')),
    ]
    for (const l of [log, compactLog(log)]) {
      const st = replay(l)
      expect(st.versionsOf('s').map((v) => [v.version, v.id])).to.deep.equal([
        [1, 1],
        [2, 2],
      ])
    }
  })

  it('one schema never gets two ids; the same schema in two subjects shares its id', () => {
    const st = replay([rec('a', 1, 1, S('A')), rec('b', 1, 2, S('A')), rec('b', 1, 1, S('A'))])
    expect(st.versionsOf('b')).to.deep.equal([{ version: 1, id: 1, deleted: false, ts: 1 }])
    expect(st.schemas.has(2)).to.equal(false)
  })

  it('soft delete, DELETE_SUBJECT, tombstones and CONFIG records', () => {
    const st = replay([
      rec('s', 1, 1, S('A')),
      rec('s', 2, 2, S('B')),
      rec('s', 1, 1, S('A'), true),
      [configKey('s'), JSON.stringify({ compatibilityLevel: 'FULL' })],
      [configKey(null), JSON.stringify({ compatibilityLevel: 'NONE' })],
      [deleteSubjectKey('s'), JSON.stringify({ subject: 's', version: 2 })],
      [schemaKey('s', 1), null],
      ['{"keytype":"NOOP","magic":0}', null],
      ['not json', 'x'],
    ])
    expect(st.versionsOf('s', true)).to.deep.equal([{ version: 2, id: 2, deleted: true, ts: 1 }])
    expect(st.subjectConfigs.get('s')).to.deep.equal({ compatibilityLevel: 'FULL' })
    expect(st.globalConfig).to.deep.equal({ compatibilityLevel: 'NONE' })
    expect(st.rejected).to.equal(1)
  })

  it('two services on one in-memory log, interleaving writes, agree and never share an id', async () => {
    // A shared log that delivers to each replica only up to what was appended, like the topic does.
    const log: Array<[string, string | null]> = []
    const replica = (): SchemaLog & { catchUp(): void } => {
      const state = new RegistryState()
      let applied = 0
      const catchUp = () => {
        for (; applied < log.length; applied++) state.apply(log[applied]![0], log[applied]![1])
      }
      return {
        state,
        catchUp,
        async append(k, v) {
          await new Promise((r) => setImmediate(r))
          log.push([k, v])
          await new Promise((r) => setImmediate(r))
          catchUp()
          return log.length - 1
        },
      }
    }
    const ra = replica()
    const rb = replica()
    const a = new SchemaRegistryService(ra)
    const b = new SchemaRegistryService(rb)
    await a.settings.setConfig(null, { compatibility: 'NONE' })
    rb.catchUp()
    const jobs = []
    for (let n = 0; n < 20; n++) {
      jobs.push(a.register('s', { schema: S(`N${n}`) }).then((r) => ({ n, ...r })))
      jobs.push(b.register('s', { schema: S(`N${n}`) }).then((r) => ({ n, ...r })))
    }
    const results = await Promise.all(jobs)
    ra.catchUp()
    rb.catchUp()
    const byN = new Map<number, number>()
    for (const r of results) {
      if (byN.has(r.n)) expect(r.id).to.equal(byN.get(r.n))
      byN.set(r.n, r.id)
    }
    expect(new Set(byN.values()).size).to.equal(20)
    expect(a.listVersions('s')).to.deep.equal(b.listVersions('s'))
    const fresh = replay(log)
    const freshCompacted = replay(compactLog(log))
    for (const [n, id] of byN) {
      expect(fresh.schemas.get(id)!.schema).to.equal(S(`N${n}`))
      expect(freshCompacted.schemas.get(id)!.schema).to.equal(S(`N${n}`))
    }
    expect(freshCompacted.versionsOf('s')).to.deep.equal(fresh.versionsOf('s'))
  })
})
