// `ts-hello`: a TypeScript function.
//
// - `GET /` says hello (and logs the request, see `aura logs ts-hello`);
// - `GET /stream?n=3` streams n lines, one every 50 ms, as they are made;
// - `GET /fetch?url=` fetches a URL and answers its status and body
//   (only hosts under `network` in the grants are reachable).
addEventListener("fetch", (event: FetchEvent) => event.respondWith(handle(event.request)));

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  console.log(`${request.method} ${url.pathname}`);
  switch (url.pathname) {
    case "/":
      return new Response("Hello from TypeScript!\n", { headers: { "content-type": "text/plain" } });
    case "/stream":
      return stream(Math.min(Number(url.searchParams.get("n") ?? 3), 100));
    case "/fetch":
      return proxy(url.searchParams.get("url") ?? "");
    default:
      return error(404, "not_found", `no route for ${request.method} ${url.pathname}`);
  }
}

function stream(lines: number): Response {
  const encoder = new TextEncoder();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === lines) return controller.close();
      if (sent > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      controller.enqueue(encoder.encode(`line ${++sent}\n`));
    },
  });
  return new Response(body, { headers: { "content-type": "text/plain" } });
}

async function proxy(target: string): Promise<Response> {
  if (!target) return error(400, "invalid_url", "pass ?url=");
  try {
    const answer = await fetch(target);
    return Response.json({ status: answer.status, body: await answer.text() });
  } catch (err) {
    console.error(`fetch ${target} failed: ${err}`);
    return error(502, "fetch_failed", String(err));
  }
}

function error(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
