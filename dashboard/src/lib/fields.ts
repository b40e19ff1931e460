// Collection definitions as the API speaks them, and the conversions between
// a record's values and what the dashboard's inputs and CSV files hold.
import type { Rules } from "./rules";

export const FIELD_TYPES = [
  "text", "number", "bool", "date", "datetime", "email", "url",
  "select", "json", "array", "relation", "file",
] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

export type Field = {
  name: string;
  type: FieldType;
  required?: boolean;
  unique?: boolean;
  default?: unknown;
  min?: number;
  max?: number;
  pattern?: string;
  values?: string[];
  multiple?: boolean;
  collection?: string;
  items?: "text" | "number" | "bool";
  renamedFrom?: string;
  bucket?: string;
};

export type Index = { fields: string[]; unique?: boolean };

export type Collection = {
  name: string;
  fields: Field[];
  indexes?: Index[];
} & Rules;

export type Record_ = { id: string; created: string; updated: string; [field: string]: unknown };

export const SYSTEM_FIELDS = ["id", "created", "updated"];

/** Whether values of `field` are lists (of values, ids or file keys). */
export function isList(field: Field): boolean {
  return field.type === "array" || (field.multiple === true && ["select", "relation", "file"].includes(field.type));
}

/** Whether a value of `field` is edited as JSON text. */
export function isJsonText(field: Field): boolean {
  return field.type === "json" || field.type === "array";
}

/** A value shown in a grid cell or written to a CSV cell. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A record value as the text its input holds. */
export function inputText(field: Field, value: unknown): string {
  if (value === null || value === undefined) return "";
  if (isJsonText(field)) return JSON.stringify(value, null, 2);
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

/**
 * The value to send for `text` typed into `field`'s input. Text the dashboard
 * cannot turn into the field's type is sent as it is, so the server's own
 * validation error names the problem; only JSON that does not parse fails here.
 */
export function parseInput(field: Field, text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  if (isJsonText(field)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      throw new Error("not valid JSON");
    }
  }
  if (isList(field)) {
    if (trimmed.startsWith("[")) {
      try {
        return JSON.parse(trimmed);
      } catch {
        // A comma-separated list after all.
      }
    }
    return trimmed.split(",").map((item) => item.trim()).filter(Boolean);
  }
  if (field.type === "number") {
    const number = Number(trimmed);
    return Number.isFinite(number) ? number : trimmed;
  }
  if (field.type === "bool") {
    if (trimmed === "true") return true;
    if (trimmed === "false") return false;
    return trimmed;
  }
  return text;
}

/**
 * A CSV file of `records`: a header row (`id`, the fields, `created`,
 * `updated`), then one row each. JSON fields are written as JSON even when
 * they hold a string, so an import reads back exactly what was exported.
 */
export function toCsv(fields: Field[], records: Record<string, unknown>[]): string {
  const quote = (text: string) => (/[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  const byName = new Map(fields.map((f) => [f.name, f]));
  const columns = ["id", ...fields.map((f) => f.name), "created", "updated"];
  const cell = (column: string, value: unknown) => {
    const field = byName.get(column);
    if (field && isJsonText(field) && value !== null && value !== undefined) return JSON.stringify(value);
    return cellText(value);
  };
  const lines = [columns.map(quote).join(",")];
  for (const record of records) lines.push(columns.map((c) => quote(cell(c, record[c]))).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** The rows of a CSV file (RFC 4180: quoted cells may hold commas, quotes and newlines). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
  }
  if (quoted) throw new Error("the CSV file ends inside a quoted cell");
  if (cell !== "" || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows.filter((r) => r.length > 1 || r[0] !== "");
}

/**
 * Records read from an imported file: a JSON array of objects, or CSV with a
 * header row whose cells are turned into each field's type. A CSV row whose
 * cell cannot be read is an Error in its place, so the other rows still go in.
 */
export function parseImport(name: string, text: string, fields: Field[]): (Record<string, unknown> | Error)[] {
  if (name.toLowerCase().endsWith(".json")) {
    const data = JSON.parse(text);
    const items = Array.isArray(data) ? data : data?.items;
    if (!Array.isArray(items) || items.some((item) => typeof item !== "object" || item === null || Array.isArray(item))) {
      throw new Error("a JSON import is an array of objects (or an object with `items`)");
    }
    // What an export adds and a create refuses.
    return items.map(({ created, updated, expand, ...record }) => record);
  }
  const [header, ...rows] = parseCsv(text);
  if (!header) throw new Error("the CSV file is empty");
  const byName = new Map(fields.map((f) => [f.name, f]));
  return rows.map((row) => {
    const record: Record<string, unknown> = {};
    for (const [i, column] of header.entries()) {
      const field = byName.get(column);
      const cell = row[i] ?? "";
      try {
        if (field) record[column] = parseInput(field, cell);
        else if (column === "id" && cell) record.id = cell;
      } catch (err) {
        return new Error(`${column}: ${(err as Error).message}`);
      }
    }
    return record;
  });
}
