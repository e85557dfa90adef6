/**
 * The JSONata evaluator of the REST sink's body mappings, and the sandbox process that runs it
 * (spawned by consumers/rest/mapping-sandbox.ts with plain node, a heap limit and no environment).
 *
 * Plain CommonJS on purpose: it runs as its own process, unchanged whether the platform runs from
 * its sources (tsx) or from the bundle (dist/), found from the project root like schemas/avro.
 *
 *   node --max-old-space-size=<MB> mapping-sandbox-process.cjs '{"timeLimitMs":1000,"maxOutputBytes":1048576}'
 *
 * Protocol (IPC, advanced serialization): the process sends `{ ready: true }` once jsonata is
 * loaded; then each request `{ id, source, inputs }` (the expression and the events' envelopes as
 * JSON text) is answered `{ id, results }`, one result per input, in order: `{ body }` (the mapped
 * JSON text) or `{ fail, message?, code?, position?, bytes? }`. One request at a time.
 */
'use strict'
const jsonata = require('jsonata')

/** Per-evaluation guards of jsonata itself: depth of nested calls, length of a sequence. */
const STACK = 200
const SEQUENCE = 100_000
/** Compiled expressions kept (one per subscription with a mapping, in practice). */
const CACHE_SIZE = 500

/** JSONata functions are objects (`_jsonata_lambda`, `_jsonata_function`), not JSON. */
function isLambda(v) {
  return v !== null && typeof v === 'object' && ('_jsonata_lambda' in v || '_jsonata_function' in v)
}

class OutputLimit extends Error {}

/**
 * The heap limit (--max-old-space-size) checked again after each evaluation. Node 20's V8 aborts the
 * process when one string would take the heap past it; Node 24's lets a single large allocation go
 * beyond it (a 300 MB string in a 64 MB heap was seen to live on). A step that ends above the limit
 * ends this process as V8 would (the parent reads "heap out of memory" on stderr: a memory-limit
 * failure of the event, and a new process), before the result is written out or kept.
 */
function overHeapLimit(memoryLimitMb) {
  if (!memoryLimitMb) return
  const used = require('node:v8').getHeapStatistics().used_heap_size
  if (used <= memoryLimitMb * 1024 * 1024) return
  process.stderr.write(
    `FATAL ERROR: heap out of memory: ${Math.round(used / 1048576)} MB used ` +
      `after a mapping step, over the ${memoryLimitMb} MB limit\n`,
  )
  process.exit(134)
}

/**
 * `evaluate(source, inputs)`: the results of one expression over several envelopes (JSON text),
 * evaluated one after the other. `timeLimitMs` is also jsonata's own cooperative timeout, which stops
 * a loop between two steps without killing the process; a single step that never returns (a
 * catastrophic regular expression) is what the parent's deadline is for.
 */
function createEvaluator({ timeLimitMs, maxOutputBytes, memoryLimitMb }) {
  const options = { timeout: timeLimitMs, stack: STACK, sequence: SEQUENCE }
  const cache = new Map()

  const compiled = (source) => {
    let expression = cache.get(source)
    if (expression) {
      cache.delete(source)
    } else {
      expression = jsonata(source, options)
      if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value)
    }
    cache.set(source, expression)
    return expression
  }

  const failure = (err) => ({
    fail: 'error',
    message: err && err.message !== undefined ? String(err.message) : String(err),
    ...(err && err.code ? { code: String(err.code) } : {}),
    ...(err && typeof err.position === 'number' ? { position: err.position } : {}),
  })

  /**
   * The body of one event, or why there is none. Strings are counted before they are written, so a huge one is refused,
   * never copied.
   */
  const one = async (expression, input) => {
    let out
    try {
      out = await expression.evaluate(JSON.parse(input))
    } catch (err) {
      return failure(err)
    }
    overHeapLimit(memoryLimitMb)
    if (out === undefined) return { fail: 'no-value' }
    if (typeof out === 'function' || isLambda(out)) return { fail: 'function' }
    let size = 0
    let body
    try {
      body = JSON.stringify(out, function (key, v) {
        if (typeof v === 'function' || isLambda(v)) throw new Error('the mapping produced a function, not JSON')
        size += key.length + (typeof v === 'string' ? v.length : 8)
        if (size > maxOutputBytes) throw new OutputLimit()
        return v
      })
    } catch (err) {
      if (err instanceof OutputLimit) return { fail: 'output-limit' }
      return { fail: 'not-json', message: err instanceof Error ? err.message : String(err) }
    }
    if (body === undefined) return { fail: 'no-value' }
    const bytes = Buffer.byteLength(body)
    if (bytes > maxOutputBytes) return { fail: 'output-limit', bytes }
    return { body }
  }

  return async function evaluate(source, inputs) {
    let expression
    try {
      expression = compiled(source)
    } catch (err) {
      const f = failure(err)
      return inputs.map(() => f)
    }
    const results = []
    for (const input of inputs) results.push(await one(expression, input))
    return results
  }
}

module.exports = { createEvaluator }

if (require.main === module) {
  const evaluate = createEvaluator(JSON.parse(process.argv[2] || '{}'))
  // the parent is gone (or closed the channel): nothing left to do
  process.on('disconnect', () => process.exit(0))
  process.on('message', (m) => {
    evaluate(m.source, m.inputs).then(
      (results) => process.send({ id: m.id, results }),
      (err) =>
        process.send({
          id: m.id,
          results: m.inputs.map(() => ({ fail: 'error', message: err instanceof Error ? err.message : String(err) })),
        }),
    )
  })
  process.send({ ready: true })
}
