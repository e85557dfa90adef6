/**
 * One SinkFactory for the worker over every sink type: each subscription's sink is built by the
 * factory of its `sink.type`. A type no factory is registered for is refused with a ConfigError
 * naming the type, so the subscription reports a clear failure instead of running the wrong sink.
 */
import { ConfigError, type FieldProblem } from '../common/errors.ts'
import type { SinkContext, SinkFactory } from '../connectors/sink/types.ts'
import type { SinkConfig } from '../control-plane/types.ts'

/** A sink's start(): refuses its config with one ConfigError naming every problem (`kind subscription <id>: ...`). */
export function checkSinkConfig(kind: string, problems: FieldProblem[], ctx: SinkContext): void {
  if (problems.length > 0)
    throw ConfigError.ofFields(`${kind} subscription ${ctx.subscriptionId}`, problems, {
      subscriptionId: ctx.subscriptionId,
    })
}

export type SinkFactories = Partial<Record<SinkConfig['type'], SinkFactory>>

export function sinkFactoryByType(factories: SinkFactories): SinkFactory {
  return async (sub, ctx) => {
    const factory = factories[sub.sink.type]
    if (!factory) {
      throw new ConfigError(
        `no sink of type "${sub.sink.type}" is available in this worker (available: ` +
          `${Object.keys(factories).join(', ')})`,
        {
          subscriptionId: sub._id,
          field: 'sink.type',
        },
      )
    }
    return factory(sub, ctx)
  }
}
