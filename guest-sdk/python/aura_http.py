"""aura_http: a tiny request/response layer over componentize-py's wasi:http bindings.

    from aura_http import Request, Response, serve

    def handle(request: Request) -> Response:
        return Response.text("Hello from Python!\n")

    IncomingHandler = serve(handle)   # componentize-py looks for this name

Works with componentize-py 0.25.x bindings (modules `wit_world.*`,
`componentize_py_types`) for a world that exports wasi:http/incoming-handler.
Pure Python, stdlib only.
"""

import json as _json
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import streams, types

CHUNK = 4096  # blocking_write_and_flush accepts at most 4096 bytes per call
READ = 65536  # bytes asked for per blocking_read

_METHODS = {
    types.Method_Get: "GET", types.Method_Head: "HEAD", types.Method_Post: "POST",
    types.Method_Put: "PUT", types.Method_Delete: "DELETE", types.Method_Connect: "CONNECT",
    types.Method_Options: "OPTIONS", types.Method_Trace: "TRACE", types.Method_Patch: "PATCH",
}


@dataclass
class Request:
    method: str                       # "GET", "POST", ...
    path: str                         # "/echo" (without the query)
    query_string: str                 # "x=1&y=2" (raw, may be "")
    headers: List[Tuple[str, str]]    # as received, names lower-case
    body: bytes                       # read fully

    @property
    def query(self) -> Dict[str, str]:
        """Query parameters, first value of each name (see `query_all`)."""
        return {k: v[0] for k, v in self.query_all.items()}

    @property
    def query_all(self) -> Dict[str, List[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError if it is not)."""
        return _json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def text(cls, text: str, status: int = 200, headers=()) -> "Response":
        return cls(status, [("content-type", "text/plain; charset=utf-8"), *headers], text.encode())

    @classmethod
    def json(cls, value: Any, status: int = 200, headers=()) -> "Response":
        body = _json.dumps(value).encode()
        return cls(status, [("content-type", "application/json"), *headers], body)


def _method(m) -> str:
    return m.value.upper() if isinstance(m, types.Method_Other) else _METHODS[type(m)]


def _read_request(req: types.IncomingRequest) -> Request:
    target = req.path_with_query() or "/"
    path, _, qs = target.partition("?")
    with req.headers() as fields:
        headers = [(k.lower(), v.decode("latin-1")) for k, v in fields.entries()]
    chunks = []
    body = req.consume()
    with body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(READ))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break  # end of body
                raise
    types.IncomingBody.finish(body)  # stream dropped first, as wasi:http requires
    return Request(_method(req.method()), path, qs, headers, b"".join(chunks))


def _outgoing(resp: Response) -> types.OutgoingResponse:
    pairs = [(k, v.encode() if isinstance(v, str) else v) for k, v in resp.headers]
    outgoing = types.OutgoingResponse(types.Fields.from_list(pairs))  # Err(HeaderError) if invalid
    outgoing.set_status_code(resp.status)  # Err(None) if not a valid status
    return outgoing


def _send(resp: Response, out: types.ResponseOutparam) -> None:
    try:
        outgoing = _outgoing(resp)
    except Err as e:
        print(f"aura_http: invalid response {resp.status} {resp.headers!r}: {e.value!r}", file=sys.stderr)
        resp = Response.json({"error": {"code": "internal", "message": "invalid response"}}, 500)
        outgoing = _outgoing(resp)
    body = outgoing.body()
    types.ResponseOutparam.set(out, Ok(outgoing))
    data = resp.body.encode() if isinstance(resp.body, str) else bytes(resp.body)
    with body.write() as stream:
        for i in range(0, len(data), CHUNK):
            stream.blocking_write_and_flush(data[i:i + CHUNK])
    types.OutgoingBody.finish(body, None)


def serve(handler: Callable[[Request], Response]):
    """Wraps `handler` into the class componentize-py exports as incoming-handler."""

    class IncomingHandler(exports.IncomingHandler):
        def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
            try:
                resp = handler(_read_request(request))
            except Exception:
                traceback.print_exc(file=sys.stderr)  # lands in the function's stderr log
                resp = Response.json({"error": {"code": "internal", "message": "unhandled exception"}}, 500)
            _send(resp, response_out)
            sys.stdout.flush()

    return IncomingHandler
