/**
 * Memory and time of the snapshot scan's index (connectors/sink/snapshot.ts): key -> latest offset for
 * 1,000,000 keys seen twice each (2,000,000 records), in the LatestOffsetTable (96-bit key digests in
 * typed arrays), beside the obvious baseline measured in the same run, a Map from the key's text to the
 * offset. Then the winners (what the delivery pass keeps: 8 bytes per key). No Kafka needed: the scan
 * reads each record once, so its cost beyond the fetch is this index.
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import { LatestOffsetTable } from '../connectors/sink/scan.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const KEYS = 1_000_000

function gcFn(): () => void {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  return () => {
    gc()
    gc()
  }
}

const used = () => {
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

/** A key as the scan sees it: the Confluent-framed Avro key bytes (here: a JSON-ish stand-in of similar length). */
const keyOf = (i: number) =>
  Buffer.from(`\u0000\u0000\u0000\u0000\u0001{"sku":"HX-${i}-B","locationId":"DE-HAM-DC${i % 7}"}`)

export const benchmark: Benchmark = {
  description: 'snapshot scan index for 1,000,000 keys: LatestOffsetTable vs Map<string, number>, memory and time',
  async run(ctx) {
    const gc = gcFn()
    const keys = Array.from({ length: KEYS }, (_, i) => keyOf(i))
    gc()

    ctx.progress('baseline: Map<key text, offset>')
    let base0 = used()
    let t0 = performance.now()
    let map: Map<string, number> | null = new Map()
    for (let o = 0; o < 2 * KEYS; o++) map.set(keys[o % KEYS]!.toString('base64'), o)
    const mapMs = performance.now() - t0
    gc()
    const mapBytes = used() - base0
    if (map.size !== KEYS) throw new Error('baseline lost keys')
    // eslint-disable-next-line no-useless-assignment -- dropped so that the collector frees it before the next arm
    map = null
    gc()

    ctx.progress('LatestOffsetTable')
    base0 = used()
    t0 = performance.now()
    let table: LatestOffsetTable | null = new LatestOffsetTable()
    for (let o = 0; o < 2 * KEYS; o++) table.set(keys[o % KEYS]!, o, true)
    const tableMs = performance.now() - t0
    gc()
    // the table is typed arrays: their exact size (a heap delta is blurred by the collector's timing)
    const tableBytes = Math.max(table.bytes, used() - base0)
    t0 = performance.now()
    const winners = table.winners()
    const winnersMs = performance.now() - t0
    if (winners.length !== KEYS) throw new Error(`table lost keys: ${winners.length}`)
    // eslint-disable-next-line no-useless-assignment -- dropped so that the collector frees it before the next arm
    table = null
    gc()

    const mb = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10
    const figures: Figure[] = [
      figure('snapshot.index.memory (1M keys)', mb(tableBytes), 'MB', mb(mapBytes), null, true),
      figure('snapshot.index.build (2M records)', Math.round(tableMs), 'ms', Math.round(mapMs), null, true),
      figure('snapshot.winners.memory (1M keys)', mb(winners.byteLength), 'MB', null, null, true),
      figure('snapshot.winners.sort', Math.round(winnersMs), 'ms', null, null, true),
    ]
    return figures
  },
}
