import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { ConfigError } from '../../common/errors.ts'
import { checkSourceConfig, loadSourceDeclarations } from '../../control-plane/sources.ts'

describe('source connector configs and declarations', () => {
  let dir: string
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decl-'))
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  const write = (v: unknown) => {
    const f = path.join(dir, 'sources.json')
    fs.writeFileSync(f, typeof v === 'string' ? v : JSON.stringify(v))
    return f
  }

  it('names every bad setting of a plug-in config as config.<setting>', () => {
    expect(checkSourceConfig('csv-drop', { dir: '/in' })).to.deep.equal([])
    expect(checkSourceConfig('csv-drop', { dir: 'in/stock' })).to.deep.equal([])
    const faults = checkSourceConfig('csv-drop', {
      dir: 'in/../..',
      batchRows: 0,
      columns: { sku: 1 },
      eventType: 'nope.nope',
      extra: true,
    })
    expect(faults.map((f) => f.field)).to.have.members([
      'config.dir',
      'config.batchRows',
      'config.columns',
      'config.eventType',
      'config.extra',
    ])
    const mongo = checkSourceConfig('mongodb', { connectionString: 'postgres://x', database: 'd', mode: 'always' })
    expect(mongo.map((f) => f.field)).to.have.members(['config.connectionString', 'config.collection', 'config.mode'])
    expect(checkSourceConfig('csv-drop', 'not an object')[0]!.field).to.equal('config')
  })

  it('reads a declaration file, and refuses a bad one with a ConfigError naming each fault by index and field', () => {
    expect(loadSourceDeclarations('')).to.deep.equal([])
    const good = [
      { name: 'acme-drop', kind: 'csv-drop', publisher: 'acme', config: { dir: '/in' }, desiredState: 'paused' },
    ]
    expect(loadSourceDeclarations(write(good))).to.deep.equal(good)
    const bad = [
      { name: 'Bad Name', kind: 'csv-drop', publisher: 'acme', config: { dir: '/in' } },
      { name: 'x', kind: 'ftp', publisher: 'acme', config: {} },
      { name: 'y', kind: 'csv-drop', config: { dir: '../other' }, desiredState: 'later', extra: 1 },
      { name: 'y', kind: 'csv-drop', publisher: 'acme', config: { dir: '/in' } },
    ]
    let err: unknown
    try {
      loadSourceDeclarations(write(bad))
    } catch (e) {
      err = e
    }
    expect(err).to.be.instanceOf(ConfigError)
    const msg = (err as Error).message
    for (const part of [
      'sources.file[0].name',
      'sources.file[1].kind',
      'sources.file[2].publisher',
      'sources.file[2].config.dir',
      'sources.file[2].desiredState',
      'sources.file[2].extra',
      'sources.file[3].name: y is declared twice',
    ]) {
      expect(msg).to.include(part)
    }
    expect(() => loadSourceDeclarations(write('{"not": "an array"}'))).to.throw(ConfigError, /JSON array/)
    expect(() => loadSourceDeclarations(write('not json'))).to.throw(ConfigError, /sources.file/)
    expect(() => loadSourceDeclarations(path.join(dir, 'missing.json'))).to.throw(ConfigError, /SOURCES_FILE/)
  })
})
