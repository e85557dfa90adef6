/**
 * House rules of the code base (issue 22, "a sink runtime a newcomer can read"): no runtime file much
 * longer than a reader can hold (the sink worker was one file of 1,850 lines), and no import circle
 * between runtime modules (consumers/mongodb/factory.ts and control-plane/service.ts imported each
 * other). Runtime: every TypeScript file the platform ships, tests, benchmarks and generated files aside.
 */
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { PROJECT_ROOT } from '../../common/paths.ts'

const RUNTIME_ROOTS = [
  'api',
  'cli',
  'client',
  'common',
  'config',
  'console',
  'connectors',
  'consumers',
  'control-plane',
  'producers',
  'schemas',
  'stack',
]
/**
 * Generated, not written (nor committed): the typed client's types, from the OpenAPI document by `npm ci` and
 * `npm run client`.
 */
const GENERATED = new Set(['client/openapi.d.ts'])
/**
 * Lines of code: blank lines and comment lines do not count. The formatter (Prettier, 120 columns) spreads
 * one call or object over many lines; the comments that say why are the house style and never a reason
 * to split.
 */
const MAX_LINES = 500
/** Runtime files allowed to be longer, each with the reason. Declarations only: keep it that way. */
const LONGER: Record<string, string> = {
  'config/schema.ts': 'the table of every setting (convict schema): one entry per setting, no logic',
  'api/openapi/document.ts': 'the OpenAPI document itself: declarations of paths and schemas, no logic',
}

function runtimeFiles(): string[] {
  const walk = (dir: string): string[] =>
    fs.readdirSync(path.join(PROJECT_ROOT, dir), { withFileTypes: true }).flatMap((e) => {
      const rel = path.posix.join(dir, e.name)
      if (e.isDirectory()) return e.name === 'node_modules' ? [] : walk(rel)
      return /\.m?ts$/.test(e.name) && !GENERATED.has(rel) ? [rel] : []
    })
  return RUNTIME_ROOTS.flatMap(walk).sort()
}

const readFile = (file: string) => fs.readFileSync(path.join(PROJECT_ROOT, file), 'utf8')
const lineCount = (file: string) =>
  readFile(file)
    .split('\n')
    .filter((line) => !/^\s*($|\/\/|\/\*|\*)/.test(line)).length

/** The runtime modules a file imports or re-exports (relative specifiers; type-only imports too). */
function importsOf(file: string, text: string, known: ReadonlySet<string>): string[] {
  const out = new Set<string>()
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?\sfrom\s+['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]!))
    if (known.has(target)) out.add(target)
  }
  return [...out]
}

/** Every import circle, each once, as the files around it (Tarjan's strongly connected components). */
function importCircles(files: string[], read: (file: string) => string = readFile): string[][] {
  const known = new Set(files)
  const edges = new Map(files.map((f) => [f, importsOf(f, read(f), known)]))
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const circles: string[][] = []
  let next = 0
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const w of edges.get(v)!) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) !== index.get(v)) return
    const component: string[] = []
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w)
      component.push(w)
      if (w === v) break
    }
    if (component.length > 1 || edges.get(v)!.includes(v)) circles.push(component.sort())
  }
  for (const f of files) if (!index.has(f)) visit(f)
  return circles
}

describe('the house', () => {
  it(`has no runtime file over ${MAX_LINES} lines of code (but those listed with a reason)`, () => {
    const files = runtimeFiles()
    expect(files).to.include('connectors/sink/worker.ts') // the walk found the code
    const long = files
      .filter((f) => !(f in LONGER) && lineCount(f) > MAX_LINES)
      .map((f) => `${f}: ${lineCount(f)} lines`)
    expect(long, 'split these along their seams').to.deep.equal([])
    const stale = Object.keys(LONGER).filter((f) => !files.includes(f) || lineCount(f) <= MAX_LINES)
    expect(stale, 'exceptions no longer needed').to.deep.equal([])
  })

  it('reaches Kafka through common/kafka/index.ts only (docs/kafka-client.md)', () => {
    const stray = runtimeFiles()
      .filter((f) => !f.startsWith('common/kafka/'))
      .flatMap((f) =>
        [...readFile(f).matchAll(/(?:\bfrom|\bimport|\brequire)\s*\(?\s*'([^']+)'/g)]
          .map((m) => m[1]!)
          .filter((spec) => {
            if (spec === 'kafkajs' || spec.startsWith('kafkajs/')) return true
            const target = path.posix.join(path.posix.dirname(f), spec)
            return target.startsWith('common/kafka/') && target !== 'common/kafka/index.ts'
          })
          .map((spec) => `${f}: ${spec}`),
      )
    expect(stray, 'import these from common/kafka/index.ts').to.deep.equal([])
  })

  it('has no import circle between runtime modules', () => {
    expect(importCircles(runtimeFiles())).to.deep.equal([])
  })

  it('finds an import circle when there is one, type-only imports included', () => {
    // the circle the sink plug-ins removed, as it was
    const text: Record<string, string> = {
      'consumers/mongodb/factory.ts': "import type { ControlPlane } from '../../control-plane/service.ts'\n",
      'control-plane/service.ts':
        "import { topicsOf } from '../consumers/mongodb/factory.ts'\nexport { " +
        "DEFAULT_DELIVERY_POLICY } from './delivery-policy.ts'\n",
      'control-plane/delivery-policy.ts': "import type { Collections } from './store.ts'\n",
    }
    expect(importCircles(Object.keys(text), (f) => text[f]!)).to.deep.equal([
      ['consumers/mongodb/factory.ts', 'control-plane/service.ts'],
    ])
  })
})
