// `ts-todo`: the REST API of examples/todo-api, in TypeScript, over
// `aura:platform/db` (as the calling user, so the collection's rules hold).
//
// - `GET /todos` lists a page (`filter`, `sort`, `page`, `perPage` passed on);
// - `POST /todos` creates a todo (201);
// - `GET`, `PATCH`, `DELETE /todos/{id}` read, change and delete one.
import * as db from "aura:platform/db@0.1.0";

const COLLECTION = "todos";

addEventListener("fetch", (event: FetchEvent) => event.respondWith(handle(event.request)));

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname.replace(/\/+$/, "");
  try {
    if (path === "/todos") {
      if (request.method === "GET") return json(200, db.list(COLLECTION, listOptions(url.searchParams)));
      if (request.method === "POST") return json(201, db.create(COLLECTION, await request.text()));
      return error(405, "method_not_allowed", `${request.method} is not allowed here: GET, POST`);
    }
    const id = path.match(/^\/todos\/([^/]+)$/)?.[1];
    if (id) {
      if (request.method === "GET") return json(200, db.get(COLLECTION, id));
      if (request.method === "PATCH") return json(200, db.update(COLLECTION, id, await request.text()));
      if (request.method === "DELETE") {
        db.delete(COLLECTION, id);
        return new Response(null, { status: 204 });
      }
      return error(405, "method_not_allowed", `${request.method} is not allowed here: GET, PATCH, DELETE`);
    }
    return error(404, "not_found", `no route for ${request.method} ${url.pathname}`);
  } catch (err) {
    return failure(err);
  }
}

function listOptions(query: URLSearchParams): db.ListOptions {
  const number = (name: string) => (query.has(name) ? Number(query.get(name)) : undefined);
  return {
    filter: query.get("filter") ?? undefined,
    sort: query.get("sort") ?? undefined,
    page: number("page"),
    perPage: number("perPage"),
    cursor: query.get("cursor") ?? undefined,
    expand: query.get("expand") ?? undefined,
  };
}

/** A platform error (thrown as `{payload: {tag, val}}`) as the status REST would answer. */
function failure(err: unknown): Response {
  const payload = (err as { payload?: db.Error }).payload;
  if (!payload) return error(500, "internal", String(err));
  const [status, code] = ({
    denied: [403, "forbidden"],
    "not-found": [404, "not_found"],
    invalid: [400, "invalid"],
    conflict: [409, "conflict"],
    internal: [500, "internal"],
  } as const)[payload.tag];
  return error(status, code, payload.val);
}

function json(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "application/json" } });
}

function error(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
