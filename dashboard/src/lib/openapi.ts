// Reading the OpenAPI document for the API page: operations grouped by
// tag, and schemas written as compact TypeScript-like types.

export type Schema = {
  $ref?: string; type?: string | string[]; properties?: Record<string, Schema>; required?: string[];
  items?: Schema; enum?: unknown[]; allOf?: Schema[]; oneOf?: Schema[]; anyOf?: Schema[];
  additionalProperties?: boolean | Schema; description?: string; format?: string; nullable?: boolean;
};
export type Parameter = { name: string; in: string; required?: boolean; description?: string; schema?: Schema };
export type Operation = {
  method: string; path: string; summary?: string; description?: string; tags?: string[];
  parameters: Parameter[]; requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses: Record<string, { description?: string; $ref?: string; content?: Record<string, { schema?: Schema }> }>;
  security?: Record<string, string[]>[];
};
export type Document = { info?: { title?: string; version?: string }; paths: Record<string, any>; components?: { schemas?: Record<string, Schema> } };

const METHODS = ["get", "post", "put", "patch", "delete"];

/** Every operation, with its path's parameters folded in, grouped by its first tag. */
export function operations(doc: Document): Map<string, Operation[]> {
  const groups = new Map<string, Operation[]>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const parameters = [...(item.parameters ?? []), ...(op.parameters ?? [])];
      const tag = op.tags?.[0] ?? "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag)!.push({ ...op, method: method.toUpperCase(), path, parameters, responses: op.responses ?? {} });
    }
  }
  return groups;
}

/** The name a `$ref` points at (`#/components/schemas/Field` → `Field`). */
export function refName(ref: string): string {
  return ref.split("/").pop()!;
}

/** `schema` as a one-line type: `{ name: string; fields?: Field[] }`. */
export function typeText(schema: Schema | undefined, depth = 0): string {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.allOf) return schema.allOf.map((s) => typeText(s, depth)).join(" & ");
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (alternatives) return alternatives.map((s) => typeText(s, depth)).join(" | ");
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const one = (type: string): string => {
    if (type === "array") return `${typeText(schema.items, depth)}[]`;
    if (type === "integer") return "integer";
    if (type !== "object") return schema.format === "binary" ? "bytes" : type;
    if (!schema.properties) {
      const extra = schema.additionalProperties;
      return typeof extra === "object" ? `Record<string, ${typeText(extra, depth)}>` : "object";
    }
    if (depth > 2) return "{ … }";
    const required = new Set(schema.required ?? []);
    const fields = Object.entries(schema.properties).map(
      ([name, s]) => `${name}${required.has(name) ? "" : "?"}: ${typeText(s, depth + 1)}`,
    );
    return `{ ${fields.join("; ")} }`;
  };
  const text = types.length ? types.map(one).join(" | ") : schema.properties ? one("object") : "any";
  return schema.nullable ? `${text} | null` : text;
}
