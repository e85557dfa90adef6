export { SOURCE_KINDS, SOURCE_PLUGINS, isSourceKind } from './plugins.ts'
export type { SourceKind, SourcePlugin, BuiltSource, BuildContext } from './plugins.ts'
