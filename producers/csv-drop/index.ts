export { CsvDropSource, csvDropConfigSchema, parseCsvDropConfig } from './source.ts'
export type { CsvDropConfig } from './source.ts'
export { CsvParser } from './csv-parser.ts'
export type { CsvRow, CsvParserOptions } from './csv-parser.ts'
