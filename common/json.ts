/** An HTTP body's text as JSON: undefined when it is empty, `notJson` when it is not JSON (e.g. the text itself). */
export function parseBody(text: string, notJson: unknown): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return notJson
  }
}
