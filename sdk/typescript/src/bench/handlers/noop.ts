import { stepHandler } from "../../index.js";

/** A no-op step, for the benchmark (bench-fixtures/templates). */
export const noop = stepHandler("ts.noop", () => ({}));
