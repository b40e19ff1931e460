"""`py-hello`: a Python function.

- `GET /` says hello (and prints the request, see `aura logs py-hello`);
- `/echo` answers the method, path, query and body it got, as JSON.
"""

from aura_http import Request, Response, serve


def handle(request: Request) -> Response:
    print(f"{request.method} {request.path} ({len(request.body)} bytes)")
    if request.path == "/":
        return Response.text("Hello from Python!\n")
    if request.path == "/echo":
        return Response.json(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "body": request.body.decode("utf-8", "replace"),
            }
        )
    return Response.json({"error": {"code": "not_found", "message": f"no route for {request.path}"}}, status=404)


IncomingHandler = serve(handle)
