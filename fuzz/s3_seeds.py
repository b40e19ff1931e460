"""Writes fuzz/corpus/s3: requests signed with the fuzz target's access key
(SigV4 in a header, presigned, streaming aws-chunked, POST-object form) for
each operation Aura's S3 port serves. Run from fuzz/: python3 s3_seeds.py"""

import base64
import hashlib
import hmac
import json
import os
import urllib.parse

ACCESS_KEY, SECRET_KEY = "AKIAFUZZ", "fuzz-secret"
REGION, HOST = "us-east-1", "127.0.0.1:9000"
AMZ_DATE, DATE = "20990101T000000Z", "20990101"
SCOPE = f"{DATE}/{REGION}/s3/aws4_request"
EMPTY = hashlib.sha256(b"").hexdigest()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def mac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key():
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (DATE, REGION, "s3", "aws4_request"):
        key = mac(key, part)
    return key


def sign(text):
    return hmac.new(signing_key(), text.encode(), hashlib.sha256).hexdigest()


def quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def canonical_query(query):
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query))


def canonical(method, path, query, headers, payload):
    names = sorted(headers)
    lines = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
    uri = "/".join(quote(s) for s in path.split("/"))
    request = "\n".join(
        [method, uri, canonical_query(query), lines, ";".join(names), payload]
    )
    return ";".join(names), "\n".join(
        ["AWS4-HMAC-SHA256", AMZ_DATE, SCOPE, sha(request.encode())]
    )


def text(method, path, query, headers, body=b""):
    target = urllib.parse.quote(path, safe="/-_.~")
    if query:
        target += "?" + "&".join(
            quote(k) + ("=" + quote(v) if v != "" else "") for k, v in query
        )
    head = f"{method} {target}\n" + "".join(f"{n}: {v}\n" for n, v in headers.items())
    return head.encode() + b"\n" + body


def signed(method, path, query=(), headers=None, body=b"", payload=None):
    payload = payload or sha(body)
    headers = {
        "host": HOST,
        "x-amz-date": AMZ_DATE,
        "x-amz-content-sha256": payload,
        **(headers or {}),
    }
    if body:
        headers["content-length"] = str(len(body))
    names, to_sign = canonical(method, path, list(query), headers, payload)
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{SCOPE}, "
        f"SignedHeaders={names}, Signature={sign(to_sign)}"
    )
    return text(method, path, list(query), headers, body)


def presigned(method, path, query=()):
    query = list(query) + [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{ACCESS_KEY}/{SCOPE}"),
        ("X-Amz-Date", AMZ_DATE),
        ("X-Amz-Expires", "3600"),
        ("X-Amz-SignedHeaders", "host"),
    ]
    _, to_sign = canonical(method, path, query, {"host": HOST}, "UNSIGNED-PAYLOAD")
    query.append(("X-Amz-Signature", sign(to_sign)))
    return text(method, path, query, {"host": HOST})


def chunked(path, query, data, size):
    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = {
        "host": HOST,
        "x-amz-date": AMZ_DATE,
        "x-amz-content-sha256": payload,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
    }
    chunks = [data[i : i + size] for i in range(0, len(data), size)] + [b""]
    length = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    headers["content-length"] = str(length)
    names, to_sign = canonical("PUT", path, list(query), headers, payload)
    previous = sign(to_sign)
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{SCOPE}, "
        f"SignedHeaders={names}, Signature={previous}"
    )
    body = b""
    for chunk in chunks:
        previous = sign(
            "\n".join(
                ["AWS4-HMAC-SHA256-PAYLOAD", AMZ_DATE, SCOPE, previous, EMPTY, sha(chunk)]
            )
        )
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + b"\r\n"
    return text("PUT", path, list(query), headers, body)


def post_object(bucket, key, data):
    policy = base64.b64encode(
        json.dumps(
            {
                "expiration": "2099-12-31T00:00:00Z",
                "conditions": [
                    {"bucket": bucket},
                    ["starts-with", "$key", ""],
                    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                    {"x-amz-credential": f"{ACCESS_KEY}/{SCOPE}"},
                    {"x-amz-date": AMZ_DATE},
                    ["content-length-range", 0, 1024],
                ],
            }
        ).encode()
    ).decode()
    fields = [
        ("key", key),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", f"{ACCESS_KEY}/{SCOPE}"),
        ("x-amz-date", AMZ_DATE),
        ("policy", policy),
        ("x-amz-signature", sign(policy)),
    ]
    body = b""
    for name, value in fields:
        body += f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    body += b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
    body += b"Content-Type: text/plain\r\n\r\n" + data + b"\r\n--B--\r\n"
    headers = {
        "host": HOST,
        "content-type": "multipart/form-data; boundary=B",
        "content-length": str(len(body)),
    }
    return text("POST", f"/{bucket}", [], headers, body)


def md5(body):
    return base64.b64encode(hashlib.md5(body).digest()).decode()


DELETE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>'
    b"<Object><Key>a</Key></Object><Object><Key>b/c&amp;d</Key></Object></Delete>"
)
COMPLETE = (
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
    b'<ETag>"0cc175b9c0f1b6a831c399e269772661"</ETag></Part>'
    b"<Part><PartNumber>2</PartNumber><ETag>etag</ETag>"
    b"<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></CompleteMultipartUpload>"
)
CREATE = (
    b"<CreateBucketConfiguration><LocationConstraint>us-east-1"
    b"</LocationConstraint></CreateBucketConfiguration>"
)

SEEDS = {
    "list_buckets": signed("GET", "/"),
    "create_bucket": signed("PUT", "/bucket", body=CREATE),
    "head_bucket": signed("HEAD", "/bucket"),
    "location": signed("GET", "/bucket", [("location", "")]),
    "delete_bucket": signed("DELETE", "/bucket"),
    "put": signed("PUT", "/bucket/notes/a.txt", headers={"content-type": "text/plain"}, body=b"hello"),
    "put_unsigned": signed(
        "PUT",
        "/bucket/k",
        headers={"content-md5": md5(b"hello"), "x-amz-meta-owner": "me"},
        body=b"hello",
        payload="UNSIGNED-PAYLOAD",
    ),
    "put_checksum": signed(
        "PUT",
        "/bucket/k",
        headers={"x-amz-checksum-crc32": "NhCmhg==", "x-amz-sdk-checksum-algorithm": "CRC32"},
        body=b"hello",
    ),
    "get_presigned": presigned("GET", "/bucket/notes/a.txt"),
    "put_presigned": presigned("PUT", "/bucket/up.bin"),
    "get_range": signed(
        "GET", "/bucket/k", headers={"range": "bytes=0-1", "if-none-match": '"abc"'}
    ),
    "head_unicode": signed("HEAD", "/bucket/caf\u00e9/\u65e5\u672c +x.txt"),
    "list_v2": signed(
        "GET",
        "/bucket",
        [("list-type", "2"), ("prefix", "a/"), ("delimiter", "/"), ("max-keys", "10"),
         ("continuation-token", "dG9rZW4="), ("encoding-type", "url")],
    ),
    "delete": signed("DELETE", "/bucket/k"),
    "delete_objects": signed(
        "POST", "/bucket", [("delete", "")], headers={"content-md5": md5(DELETE)}, body=DELETE
    ),
    "copy": signed(
        "PUT",
        "/bucket/copy",
        headers={"x-amz-copy-source": "/bucket/k", "x-amz-metadata-directive": "REPLACE",
                 "x-amz-copy-source-if-match": '"abc"'},
    ),
    "create_upload": signed("POST", "/bucket/big", [("uploads", "")], headers={"content-type": "video/mp4"}),
    "upload_part_chunked": chunked(
        "/bucket/big", [("partNumber", "1"), ("uploadId", "upload")], b"x" * 100, 40
    ),
    "put_chunked": chunked("/bucket/streamed", [], b"hello chunks", 5),
    "list_parts": signed("GET", "/bucket/big", [("uploadId", "upload"), ("max-parts", "2")]),
    "complete": signed("POST", "/bucket/big", [("uploadId", "upload")], body=COMPLETE),
    "abort": signed("DELETE", "/bucket/big", [("uploadId", "upload")]),
    "post_object": post_object("bucket", "posted/${filename}", b"posted"),
    "anonymous": text("GET", "/bucket/k", [], {"host": HOST}),
    "bad_signature": signed("GET", "/bucket/k").replace(b"Signature=", b"Signature=0"),
}

if __name__ == "__main__":
    os.makedirs("corpus/s3", exist_ok=True)
    for name, data in SEEDS.items():
        with open(f"corpus/s3/{name}", "wb") as out:
            out.write(data)
