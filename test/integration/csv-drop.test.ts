/**
 * The CSV stock file drop against the real broker and the in-process registry: good, bad and mixed
 * files, header mapping, rejects by line and field, files moved to processed/, and a kill -9 of the
 * source process mid-file twice: every good row ends up in Kafka exactly once, in file order per key.
 * Each source is confined to a publisher's drop folder, as the platform runs it: a symbolic link to a
 * file or folder elsewhere is not followed, at start or later.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import type { TopicSpec } from '../../schemas/topics.ts'
import { HEADER } from '../../schemas/headers.ts'
import { SourceRunner } from '../../connectors/source/runner.ts'
import { CsvDropSource, parseCsvDropConfig } from '../../producers/csv-drop/index.ts'
import { kafkaBrokers } from '../../config/index.ts'
import { testConfig, waitFor } from '../helpers/env.ts'
import { quietLogger } from '../helpers/registry.ts'
import { countRecords, readTopic, sourceSuite } from '../helpers/sources.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const MAPPING = {
  columns: {
    sku: 'Item No',
    locationId: 'Warehouse',
    onHand: 'On Hand',
    reserved: 'Allocated',
    available: 'Available',
    sequence: 'Seq',
  },
  constants: { manufacturerId: 'acme', unitOfMeasure: 'EA' },
}
const HEADER_ROW = 'Item No,Description,Warehouse,On Hand,Allocated,Available,Seq'

describe('csv drop source', function () {
  this.timeout(180_000)
  /** A drop root, the publisher's drop folder in it, and the source's folder (`in`) in that. */
  let root: string
  let folder: string
  let dir: string
  /** A folder beside the drop root: what no source may read or write. */
  let outside: string
  const suite = sourceSuite()
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'csv-drop-'))
    folder = path.join(root, 'drop', 'org_p')
    dir = path.join(folder, 'in')
    outside = path.join(root, 'outside')
    fs.mkdirSync(dir, { recursive: true })
    fs.mkdirSync(outside)
  })
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true })
  })

  function startSource(t: TopicSpec, extra: Record<string, unknown> = {}) {
    const source = new CsvDropSource([t])
    const runner = new SourceRunner(
      source,
      parseCsvDropConfig({ dir: 'in', topic: t.name, settleMs: 0, scanIntervalMs: 20, ...MAPPING, ...extra }, folder),
      {
        name: `csv-${path.basename(root)}`,
        kafka: suite.kafka,
        serde: suite.serde,
        topics: [t],
        logger: quietLogger,
        idleMs: 20,
      },
    )
    return { source, runner }
  }

  async function runUntilProcessed(t: TopicSpec, file: string, extra: Record<string, unknown> = {}) {
    const { source, runner } = startSource(t, extra)
    await runner.start()
    try {
      await waitFor(() => source.finished.includes(file), { timeoutMs: 60_000, what: `${file} processed` })
    } finally {
      await runner.stop()
    }
    return runner
  }

  it(
    'a good file: BOM, CRLF, quoted fields, header mapping; every row produced ' +
      'with key and headers; the file moved to processed/',
    async () => {
      const t = await suite.topic()
      const rows = [
        '\uFEFF' + HEADER_ROW,
        'HX-1,"Bolt, M6 ""zinc""",DE-HAM,100,10,90,1',
        'HX-2,"Nut\r\nM6",DE-HAM,50,0,50,2',
        'HX-1,Bolt,DE-HAM,80,10,70,3',
      ]
      fs.writeFileSync(path.join(dir, 'stock.csv'), rows.join('\r\n') + '\r\n')
      await runUntilProcessed(t, 'stock.csv')
      const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name)
      expect(
        records.map((r) => [r.value.sku, r.value.onHand, r.value.sequence]).sort((a, b) => Number(a[2]) - Number(b[2])),
      ).to.deep.equal([
        ['HX-1', 100, 1],
        ['HX-2', 50, 2],
        ['HX-1', 80, 3],
      ])
      for (const r of records) {
        expect({ ...r.key }, 'the key carries its owner').to.deep.equal({
          manufacturerId: 'acme',
          sku: r.value.sku,
          locationId: 'DE-HAM',
        })
        expect(r.value.manufacturerId).to.equal('acme')
        expect(r.headers[HEADER.type]).to.equal('inventory.level.changed')
      }
      expect(fs.existsSync(path.join(dir, 'stock.csv'))).to.equal(false)
      expect(fs.existsSync(path.join(dir, 'processed', 'stock.csv'))).to.equal(true)
      expect(fs.existsSync(path.join(dir, 'processed', 'stock.rejects.csv'))).to.equal(false)
    },
  )

  it('a bad file: nothing produced, every bad row in the reject file by line and field', async () => {
    const t = await suite.topic()
    const rows = [
      HEADER_ROW,
      'HX-1,Bolt,DE-HAM,lots,10,90,1',
      'HX-2,Nut,DE-HAM,50,0',
      ',Washer,DE-HAM,5,0,5,x',
      '"HX-4"oops,Nut,DE-HAM,1,1,0,4',
    ]
    fs.writeFileSync(path.join(dir, 'bad.csv'), rows.join('\n') + '\n')
    await runUntilProcessed(t, 'bad.csv')
    expect(await countRecords(suite.admin, t.name)).to.equal(0)
    const rejects = fs
      .readFileSync(path.join(dir, 'processed', 'bad.rejects.csv'), 'utf8')
      .trim()
      .split('\n')
    expect(rejects[0]).to.equal('line,field,column,error,row')
    const byLine = rejects.slice(1).map((l) => l.split(',').slice(0, 3).join(','))
    expect(byLine).to.include.members(['2,/onHand,On Hand', '3,,', '5,,', '4,/sequence,Seq'])
    expect(new Set(rejects.slice(1).map((l) => l.split(',')[0]))).to.deep.equal(new Set(['2', '3', '4', '5']))
  })

  it('a mixed file: good rows flow in file order, bad rows are rejected by line', async () => {
    const t = await suite.topic()
    const lines = [HEADER_ROW]
    const good: number[] = []
    for (let i = 1; i <= 300; i++) {
      if (i % 37 === 0) lines.push(`HX-${i % 5},Bolt,DE-HAM,NaN,0,0,${i}`)
      else {
        lines.push(`HX-${i % 5},Bolt,DE-HAM,${i},0,${i},${i}`)
        good.push(i)
      }
    }
    fs.writeFileSync(path.join(dir, 'mixed.csv'), lines.join('\n'))
    await runUntilProcessed(t, 'mixed.csv', { batchRows: 40 })
    const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name)
    expect(records.map((r) => r.value.sequence).sort((a, b) => a - b)).to.deep.equal(good)
    for (let k = 0; k < 5; k++) {
      const seqs = records.filter((r) => r.value.sku === `HX-${k}`).map((r) => r.value.sequence)
      expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b))
    }
    const rejected = fs
      .readFileSync(path.join(dir, 'processed', 'mixed.rejects.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[0]))
    expect(rejected).to.deep.equal([37, 74, 111, 148, 185, 222, 259, 296].map((i) => i + 1))
  })

  it(
    'kill -9 between ack and commit, then twice mid-file: every good row in Kafka ' +
      'exactly once, in file order per key, rejects once',
    async () => {
      const t = await suite.topic()
      const N = 30_000
      const KEYS = 40
      const lines = [HEADER_ROW]
      const good: number[] = []
      const bad: number[] = []
      for (let i = 1; i <= N; i++) {
        if (i % 997 === 0) {
          lines.push(`HX-${i % KEYS},Bolt,DE-HAM,oops,0,0,${i}`)
          bad.push(i + 1)
        } else {
          lines.push(`HX-${i % KEYS},"Bolt, ""M${i % 9}""",DE-HAM,${i},0,${i},${i}`)
          good.push(i)
        }
      }
      fs.writeFileSync(path.join(dir, 'big.csv'), lines.join('\r\n') + '\r\n')
      const argsOf = (extra: Record<string, unknown>) =>
        JSON.stringify({
          brokers: kafkaBrokers(testConfig()),
          registryUrl: suite.registry.url,
          topic: t,
          name: 'csv-kill',
          root: folder,
          config: { dir: 'in', topic: t.name, settleMs: 0, scanIntervalMs: 20, batchRows: 250, ...MAPPING },
          ...extra,
        })
      const spawnChild = (args = argsOf({})): ChildProcess => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', path.join(here, '..', 'fixtures', 'csv-drop-child.ts'), args],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        )
        child.stderr!.on('data', () => undefined)
        child.stdout!.on('data', () => undefined)
        return child
      }
      const exited = (c: ChildProcess) =>
        new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())))

      // First a crash after the broker acked a batch and before its resume point was stored.
      const crashed = spawnChild(argsOf({ crashBeforeCommit: 12 }))
      await exited(crashed)
      expect(crashed.signalCode).to.equal('SIGKILL')
      expect(await countRecords(suite.admin, t.name)).to.equal(12 * 250)
      // Then kill -9 from outside at arbitrary moments.
      for (const killAt of [6_000, 15_000]) {
        const child = spawnChild()
        try {
          await waitFor(async () => (await countRecords(suite.admin, t.name)) >= killAt, {
            timeoutMs: 90_000,
            intervalMs: 20,
            what: `${killAt} records`,
          })
          child.kill('SIGKILL')
          await exited(child)
        } finally {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        }
        expect(fs.existsSync(path.join(dir, 'big.csv')), 'killed before the end of the file').to.equal(true)
      }
      const last = spawnChild()
      try {
        await waitFor(() => fs.existsSync(path.join(dir, 'processed', 'big.csv')), {
          timeoutMs: 120_000,
          what: 'big.csv processed',
        })
        last.kill('SIGTERM')
        await exited(last)
      } finally {
        if (last.exitCode === null && last.signalCode === null) last.kill('SIGKILL')
      }

      const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name, 60_000)
      const seqs = records.map((r) => r.value.sequence as number)
      const counts = new Map<number, number>()
      for (const s of seqs) counts.set(s, (counts.get(s) ?? 0) + 1)
      const dupes = [...counts].filter(([, n]) => n > 1)
      expect(dupes, 'duplicated rows').to.deep.equal([])
      expect(records.length).to.equal(good.length)
      expect([...counts.keys()].sort((a, b) => a - b)).to.deep.equal(good)
      for (let k = 0; k < KEYS; k++) {
        const perKey = records.filter((r) => r.value.sku === `HX-${k}`)
        expect(new Set(perKey.map((r) => r.partition)).size).to.equal(1)
        const s = perKey.map((r) => r.value.sequence)
        expect(s, `order of HX-${k}`).to.deep.equal([...s].sort((a, b) => a - b))
      }
      const rejected = fs
        .readFileSync(path.join(dir, 'processed', 'big.rejects.csv'), 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => Number(l.split(',')[0]))
      expect(rejected).to.deep.equal(bad)
    },
  )

  describe("confined to its publisher's drop folder", () => {
    const stockFile = (p: string, sku: string, rows = 3) =>
      fs.writeFileSync(
        p,
        [HEADER_ROW, ...Array.from({ length: rows }, (_, i) => `${sku},Bolt,DE-HAM,${i},0,${i},${i + 1}`)].join('\n') +
          '\n',
      )

    it('a symbolic link to a file elsewhere is neither read nor moved; the regular file beside it is', async () => {
      const t = await suite.topic()
      stockFile(path.join(outside, 'secret.csv'), 'SECRET', 5)
      fs.symlinkSync(path.join(outside, 'secret.csv'), path.join(dir, 'a-link.csv'))
      stockFile(path.join(dir, 'b-real.csv'), 'REAL', 3)
      const { source, runner } = startSource(t)
      await runner.start()
      try {
        await waitFor(() => source.finished.includes('b-real.csv'), { timeoutMs: 30_000, what: 'b-real.csv processed' })
        await new Promise((r) => setTimeout(r, 300)) // a few more scans
        expect(source.finished).to.deep.equal(['b-real.csv'])
      } finally {
        await runner.stop()
      }
      const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name)
      expect(records.map((r) => r.value.sku)).to.deep.equal(['REAL', 'REAL', 'REAL'])
      expect(fs.lstatSync(path.join(dir, 'a-link.csv')).isSymbolicLink(), 'the link left where it was').to.equal(true)
      expect(fs.readdirSync(outside)).to.deep.equal(['secret.csv'])
    })

    it(
      'a folder that leads out through a symbolic link is refused at start, naming ' +
        'the setting, and nothing is created there',
      async () => {
        const t = await suite.topic()
        fs.rmSync(dir, { recursive: true })
        fs.symlinkSync(outside, dir)
        stockFile(path.join(outside, 'stock.csv'), 'OUT')
        let err: any
        try {
          await startSource(t).runner.start()
        } catch (e) {
          err = e
        }
        expect(err?.code).to.equal('CONFIG_INVALID')
        expect(err.message).to.match(/config\.dir leads out of the publisher's drop folder/)
        fs.rmSync(dir)
        fs.mkdirSync(dir)
        fs.symlinkSync(outside, path.join(dir, 'done'))
        const e2 = await startSource(t, { processedDir: 'in/done' })
          .runner.start()
          .then(
            () => undefined,
            (e: Error) => e,
          )
        expect(e2?.message).to.match(/config\.processedDir leads out/)
        const e3 = await startSource(t, { stateDir: '/tmp' })
          .runner.start()
          .then(
            () => undefined,
            (e: Error) => e,
          )
        expect(e3?.message).to.match(/config\.stateDir must be a folder inside the publisher's drop folder/)
        expect(fs.readdirSync(outside)).to.deep.equal(['stock.csv'])
        expect(await countRecords(suite.admin, t.name)).to.equal(0)
      },
    )

    it(
      'a folder replaced by a symbolic link while the source runs: the next scan ' +
        'fails the source, the file there is not read',
      async () => {
        const t = await suite.topic()
        const { source, runner } = startSource(t)
        await runner.start()
        try {
          stockFile(path.join(dir, 'first.csv'), 'FIRST')
          await waitFor(() => source.finished.includes('first.csv'), { timeoutMs: 30_000, what: 'first.csv processed' })
          stockFile(path.join(outside, 'second.csv'), 'SECOND')
          fs.renameSync(dir, path.join(folder, 'old'))
          fs.symlinkSync(outside, dir)
          await waitFor(() => runner.state === 'failed', { timeoutMs: 10_000, what: 'the source failed' })
          expect(runner.error?.message).to.match(/config\.dir now leads elsewhere/)
        } finally {
          await runner.stop()
        }
        expect((await readTopic(suite.kafka, suite.admin, suite.serde, t.name)).map((r) => r.value.sku)).to.deep.equal([
          'FIRST',
          'FIRST',
          'FIRST',
        ])
        expect(fs.readdirSync(outside)).to.deep.equal(['second.csv'])
      },
    )
  })
})
