// Filters with values in them, safely: f`owner = ${id} && title ~ ${text}`
// writes each value as a literal of the filter language, so no value can
// change the expression around it.

/** A value `f` writes as a literal. */
export type FilterValue = string | number | boolean | null | Date;

/** Writes `value` as a filter literal. */
export function literal(value: FilterValue): string {
  if (value === null) return "null";
  if (value instanceof Date) return quote(value.toISOString());
  switch (typeof value) {
    case "string":
      return quote(value);
    case "boolean":
      return String(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`a filter cannot hold ${value}`);
      return plain(value);
    default:
      throw new TypeError(`a filter cannot hold a ${typeof value}`);
  }
}

/** `value` without an exponent, as the filter language writes numbers. */
function plain(value: number): string {
  const text = String(value);
  if (!/e/i.test(text)) return text;
  // Large values are integers in floating point; small ones get 20 decimals.
  if (Math.abs(value) >= 1) return BigInt(value).toString();
  const fixed = value.toFixed(20).replace(/0+$/, "");
  if (/^-?0\.?$/.test(fixed)) throw new TypeError(`${value} is too small for a filter literal`);
  return fixed;
}

function quote(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The tagged template: every interpolated value becomes a literal. */
export function f(strings: TemplateStringsArray, ...values: FilterValue[]): string {
  let out = strings[0];
  values.forEach((value, i) => {
    // `'${x}'` would put a literal inside quotes, where its own quotes end them.
    if (/['"]$/.test(strings[i]) || /^['"]/.test(strings[i + 1])) {
      throw new TypeError("f writes the quotes itself: use ${value}, not '${value}'");
    }
    out += literal(value) + strings[i + 1];
  });
  return out;
}
