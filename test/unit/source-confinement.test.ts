/**
 * Confinement of sources, on real files in a temporary folder: a csv-drop source's folders lie in its
 * publisher's drop folder (by name and by real path), files are opened without following links, and
 * a source writes only to its contract's topic, never partners.profiles.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { ConfigError } from '../../common/errors.ts'
import { checkSourceConfig } from '../../control-plane/sources.ts'
import {
  confineFolders,
  folderTextFault,
  isInside,
  openNoFollow,
  publisherDropFolder,
} from '../../producers/csv-drop/folders.ts'
import { buildSource, type SourceOwner } from '../../producers/plugins.ts'
import { TOPICS } from '../../schemas/topics.ts'
import { createUrlGuard } from '../../common/url-guard.ts'

const guard = createUrlGuard()

describe('source confinement', () => {
  let tmp: string
  let owner: SourceOwner
  /** Publisher P's drop folder, publisher Q's, and a folder outside the drop root. */
  let own: string
  let theirs: string
  let outside: string
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'confine-'))
    owner = { publisherId: 'org_p', dropRoot: path.join(tmp, 'drop') }
    own = path.join(tmp, 'drop', 'org_p')
    theirs = path.join(tmp, 'drop', 'org_q')
    outside = path.join(tmp, 'outside')
    for (const d of [own, theirs, outside]) fs.mkdirSync(d, { recursive: true })
  })
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }))

  const fields = (config: Record<string, unknown>, o: SourceOwner | undefined = owner) =>
    checkSourceConfig('csv-drop', config, 'config', o).map((f) => f.field)

  it('names a folder by its text: NUL bytes and .. segments are faults on any host', () => {
    expect(folderTextFault('stock/in')).to.equal(undefined)
    expect(folderTextFault('/abs/stock')).to.equal(undefined)
    expect(folderTextFault('..stock')).to.equal(undefined)
    expect(folderTextFault('a/../b')).to.match(/'\.\.'/)
    expect(folderTextFault('..\\b')).to.match(/'\.\.'/)
    expect(folderTextFault('a\0b')).to.match(/NUL/)
    expect(fields({ dir: '..' }, undefined)).to.deep.equal(['config.dir'])
    expect(fields({ dir: 'in', stateDir: 'x/../../y', processedDir: 'p\0' }, undefined)).to.have.members([
      'config.stateDir',
      'config.processedDir',
    ])
    expect(isInside('/d/p', '/d/p/..x')).to.equal(true)
    expect(isInside('/d/p', '/d/p')).to.equal(true)
    expect(isInside('/d/p', '/d/px')).to.equal(false)
    expect(isInside('/d/p', '/d')).to.equal(false)
  })

  it(
    'for a publisher: relative folders and absolute ones inside its drop folder ' +
      "pass; elsewhere, another publisher's folder and links out are faults",
    () => {
      expect(fields({ dir: 'in' })).to.deep.equal([])
      expect(fields({ dir: 'not/yet/made' })).to.deep.equal([])
      expect(fields({ dir: path.join(own, 'in'), stateDir: own, processedDir: 'done' })).to.deep.equal([])
      expect(fields({ dir: outside })).to.deep.equal(['config.dir'])
      expect(fields({ dir: path.join(theirs, 'in') })).to.deep.equal(['config.dir'])
      expect(fields({ dir: owner.dropRoot })).to.deep.equal(['config.dir'])
      fs.symlinkSync(theirs, path.join(own, 'to-q'))
      fs.symlinkSync(outside, path.join(own, 'out'))
      fs.symlinkSync(path.join(own, 'in'), path.join(own, 'alias')) // a link that stays inside
      fs.mkdirSync(path.join(own, 'in'))
      fs.symlinkSync(path.join(tmp, 'gone'), path.join(own, 'dangling'))
      expect(fields({ dir: 'to-q' })).to.deep.equal(['config.dir'])
      expect(fields({ dir: 'to-q/in/deeper' })).to.deep.equal(['config.dir'])
      expect(fields({ dir: 'in', processedDir: 'out/done' })).to.deep.equal(['config.processedDir'])
      expect(fields({ dir: 'alias' })).to.deep.equal([])
      expect(fields({ dir: 'dangling' })).to.deep.equal(['config.dir'])
      expect(() => publisherDropFolder(owner.dropRoot, '../org_q')).to.throw(ConfigError)
    },
  )

  it(
    'at start: missing folders are made inside; a folder leading out is a ' +
      'ConfigError naming it, and nothing is made outside',
    () => {
      const made = confineFolders(own, {
        dir: path.join(own, 'a/b'),
        stateDir: path.join(own, 'a/b/.state'),
        processedDir: path.join(own, 'done'),
      })
      expect(made.dir).to.equal(fs.realpathSync(path.join(own, 'a/b')))
      expect(fs.statSync(made.stateDir).isDirectory()).to.equal(true)
      fs.symlinkSync(outside, path.join(own, 'out'))
      const fault = (folders: Parameters<typeof confineFolders>[1]) => {
        try {
          confineFolders(own, folders)
        } catch (err) {
          expect(err).to.be.instanceOf(ConfigError)
          return (err as ConfigError).message
        }
        throw new Error('not refused')
      }
      expect(
        fault({ dir: path.join(own, 'out/new'), stateDir: path.join(own, 's'), processedDir: path.join(own, 'p') }),
      ).to.match(/config\.dir leads out/)
      expect(fault({ dir: path.join(own, 'in'), stateDir: path.join(own, 'in/.s'), processedDir: outside })).to.match(
        /config\.processedDir must be a folder inside/,
      )
      expect(fs.readdirSync(outside)).to.deep.equal([])
    },
  )

  it('opens files without following a symbolic link, for reading and for writing', () => {
    const secret = path.join(outside, 'secret.csv')
    fs.writeFileSync(secret, 'secret\n')
    fs.symlinkSync(secret, path.join(own, 'link.csv'))
    for (const flags of ['r', 'a', 'w'] as const)
      expect(() => openNoFollow(path.join(own, 'link.csv'), flags), flags).to.throw(/ELOOP/)
    expect(fs.readFileSync(secret, 'utf8')).to.equal('secret\n')
    const fd = openNoFollow(path.join(own, 'plain.csv'), 'a', true)
    fs.writeSync(fd, 'xy')
    fs.closeSync(fd)
    const w = openNoFollow(path.join(own, 'plain.csv'), 'w', true)
    fs.writeSync(w, 'z')
    fs.closeSync(w)
    expect(fs.readFileSync(path.join(own, 'plain.csv'), 'utf8')).to.equal('z')
    // A folder swapped for a link after the checks: the opened file is not where its path said.
    fs.writeFileSync(path.join(outside, 'x.json.tmp'), 'keep')
    fs.symlinkSync(outside, path.join(own, 'swapped'))
    if (fs.existsSync('/proc/self/fd')) {
      for (const flags of ['r', 'a', 'w'] as const)
        expect(() => openNoFollow(path.join(own, 'swapped', 'x.json.tmp'), flags, true), flags).to.throw(
          ConfigError,
          /now leads elsewhere/,
        )
      expect(fs.readFileSync(path.join(outside, 'x.json.tmp'), 'utf8'), 'not truncated').to.equal('keep')
    }
  })

  it("a source writes only to its contract's topic, and never to partners.profiles", () => {
    const topicFaults = (kind: 'csv-drop' | 'mongodb', extra: Record<string, unknown>) => {
      const base =
        kind === 'csv-drop' ? { dir: 'in' } : { connectionString: 'mongodb://h/', database: 'd', collection: 'c' }
      return checkSourceConfig(kind, { ...base, ...extra }, 'config', owner)
    }
    for (const kind of ['csv-drop', 'mongodb'] as const) {
      expect(topicFaults(kind, {})).to.deep.equal([])
      expect(topicFaults(kind, { topic: 'inventory.levels' })).to.deep.equal([])
      expect(topicFaults(kind, { eventType: 'deal.registered', topic: 'deals.registrations' })).to.deep.equal([])
      expect(topicFaults(kind, { topic: 'deals.registrations' }).map((f) => f.field)).to.deep.equal(['config.topic'])
      expect(topicFaults(kind, { topic: 'test-anything' }).map((f) => f.field)).to.deep.equal(['config.topic'])
      expect(topicFaults(kind, { topic: 'partners.profiles' })[0]!.message).to.include('platform only')
      expect(topicFaults(kind, { eventType: 'partner.profile.changed' }).map((f) => f.field)).to.deep.equal([
        'config.eventType',
      ])
      expect(
        topicFaults(kind, { eventType: 'partner.profile.changed', topic: 'partners.profiles' }).map((f) => f.field),
      ).to.deep.equal(['config.eventType'])
    }
  })

  it(
    "builds a source for its contract's topic and its publisher's folder, and " +
      'refuses a stored config past the checks',
    async () => {
      const built = buildSource('csv-drop', { dir: 'in' }, { guard, owner })
      expect(built.topics).to.deep.equal([TOPICS.inventoryLevels])
      expect(built.config).to.deep.include({
        root: own,
        dir: path.join(own, 'in'),
        topic: 'inventory.levels',
        processedDir: path.join(own, 'in', 'processed'),
      })
      await built.close()
      expect(() => buildSource('csv-drop', { dir: 'in', topic: 'deals.registrations' }, { guard, owner })).to.throw(
        ConfigError,
        /config\.topic must be inventory\.levels/,
      )
      expect(() => buildSource('csv-drop', { dir: outside }, { guard, owner })).to.throw(
        ConfigError,
        /config\.dir must be a folder inside/,
      )
      expect(() =>
        buildSource(
          'mongodb',
          { connectionString: 'mongodb://h/', database: 'd', collection: 'c', eventType: 'partner.profile.changed' },
          { guard, owner },
        ),
      ).to.throw(ConfigError, /config\.eventType/)
    },
  )
})
