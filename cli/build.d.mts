/** Types of cli/build.mjs (plain JavaScript, so that it runs before anything is built). */
export declare const ROOT: string
export declare const PLATFORM_BUNDLE: string
export declare function buildBundle(entry?: string, outfile?: string): Promise<string>
