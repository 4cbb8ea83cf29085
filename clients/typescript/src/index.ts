/** The decision point's client for JavaScript front-ends (see client.ts). */

export * from "./client.js";
export * from "./errors.js";
export type { components, paths } from "./schema.js";
