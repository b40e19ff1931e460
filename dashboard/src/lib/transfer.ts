// Export and import of records: every record a filter matches, fetched page
// by page with cursors, and records created one by one from a file.
import { ApiError, call, enc, withQuery } from "../api";
import { parseImport, toCsv, type Collection, type Record_ } from "./fields";

/** Every record of `collection` that `filter` matches, in `sort` order. */
export async function fetchAll(collection: string, filter: string, sort: string): Promise<Record_[]> {
  const all: Record_[] = [];
  let cursor = "";
  for (;;) {
    const page = await call<{ items: Record_[]; nextCursor: string | null }>(
      "GET",
      withQuery(`/api/collections/${enc(collection)}/records`, { filter, sort, perPage: 500 }) +
        `&cursor=${enc(cursor)}`,
    );
    all.push(...page.items);
    if (!page.nextCursor) return all;
    cursor = page.nextCursor;
  }
}

/** Offers `data` to the browser as a file called `name`. */
export function saveFile(name: string, type: string, data: string | Blob) {
  const url = URL.createObjectURL(typeof data === "string" ? new Blob([data], { type }) : data);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Downloads the matching records as `NAME.csv` or `NAME.json`. */
export async function exportRecords(collection: Collection, filter: string, sort: string, format: "csv" | "json") {
  const records = await fetchAll(collection.name, filter, sort);
  if (format === "json") {
    saveFile(`${collection.name}.json`, "application/json", JSON.stringify(records, null, 2) + "\n");
  } else {
    saveFile(`${collection.name}.csv`, "text/csv", toCsv(collection.fields, records));
  }
  return records.length;
}

export type ImportReport = { total: number; created: number; failures: { row: number; message: string }[] };

/**
 * Creates a record for each row of `file`. A row that fails is reported
 * with the server's error and the others still go in.
 */
export async function importRecords(collection: Collection, file: File): Promise<ImportReport> {
  const rows = parseImport(file.name, await file.text(), collection.fields);
  const report: ImportReport = { total: rows.length, created: 0, failures: [] };
  for (const [i, row] of rows.entries()) {
    if (row instanceof Error) {
      report.failures.push({ row: i + 1, message: row.message });
      continue;
    }
    try {
      await call("POST", `/api/collections/${enc(collection.name)}/records`, row);
      report.created++;
    } catch (err) {
      let message = String(err);
      if (err instanceof ApiError) {
        const named = err.details.fields ?? {};
        const fields = Array.isArray(named)
          ? named.join(", ")
          : Object.entries(named)
              .map(([name, problem]) => `${name}: ${(problem as { message: string }).message}`)
              .join(", ");
        message = `${err.code}: ${fields || err.message}`;
      }
      report.failures.push({ row: i + 1, message });
    }
  }
  return report;
}
