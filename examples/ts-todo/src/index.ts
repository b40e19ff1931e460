// `ts-todo`: the REST API of examples/todo-api, in TypeScript, over
// `aura:platform/db` through `@aura/function/db` (parsed JSON, errors as
// PlatformError), as the calling user, so the collection's rules hold.
//
// - `GET /todos` lists a page (`filter`, `sort`, `page`, `perPage` passed on);
// - `POST /todos` creates a todo (201);
// - `GET`, `PATCH`, `DELETE /todos/{id}` read, change and delete one;
// - `GET /me` answers the signed-in user the request acts for (401 without).
import * as auth from "@aura/function/auth";
import * as db from "@aura/function/db";

const COLLECTION = "todos";

addEventListener("fetch", (event: FetchEvent) => event.respondWith(handle(event.request)));

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname.replace(/\/+$/, "");
  try {
    if (path === "/me" && request.method === "GET") {
      const user = auth.caller();
      return user ? Response.json(user) : error(401, "unauthorized", "sign in first: send Authorization: Bearer <access token>");
    }
    if (path === "/todos") {
      if (request.method === "GET") return Response.json(db.list(COLLECTION, listOptions(url.searchParams)));
      if (request.method === "POST") return Response.json(db.create(COLLECTION, await body(request)), { status: 201 });
      return error(405, "method_not_allowed", `${request.method} is not allowed here: GET, POST`);
    }
    const id = path.match(/^\/todos\/([^/]+)$/)?.[1];
    if (id) {
      if (request.method === "GET") return Response.json(db.get(COLLECTION, id));
      if (request.method === "PATCH") return Response.json(db.update(COLLECTION, id, await body(request)));
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

/** The request's JSON object. */
async function body(request: Request): Promise<object> {
  try {
    return await request.json();
  } catch {
    throw new db.PlatformError("invalid", "the body is not valid JSON");
  }
}

/** A platform error as the status and code REST would answer. */
function failure(err: unknown): Response {
  if (!(err instanceof db.PlatformError)) return error(500, "internal", String(err));
  const code = err.code === "denied" ? "forbidden" : err.code.replace("-", "_");
  return error(err.status, code, err.message);
}

function error(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
