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
      return String(value);
    default:
      throw new TypeError(`a filter cannot hold a ${typeof value}`);
  }
}

function quote(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The tagged template: every interpolated value becomes a literal. */
export function f(strings: TemplateStringsArray, ...values: FilterValue[]): string {
  let out = strings[0];
  values.forEach((value, i) => {
    out += literal(value) + strings[i + 1];
  });
  return out;
}
