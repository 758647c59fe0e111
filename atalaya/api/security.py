"""Security headers on every response, and safe download headers.

The workspace page loads only its own scripts and styles (no inline script or
style attribute), so the Content-Security-Policy is strict. FastAPI's
``/docs`` and ``/redoc`` pages are built from inline script and a CDN and get
a looser policy of their own (they hold no data; on an air-gapped node they do
not render).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import unicodedata
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self' blob:; child-src blob:; frame-src 'self'; font-src 'self'; "
    "manifest-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
"""The workspace's Content-Security-Policy (MapLibre GL runs its workers from ``blob:`` URLs)."""
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")

_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
]


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        csp = DOCS_CSP if path in DOCS_PATHS or path.startswith("/docs/") else CSP
        api = path.startswith("/api/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                # a route may set its own (the partner report: a policy for its styles, framed by this origin)
                headers += [(k, v) for k, v in _HEADERS if k not in have]
                if b"content-security-policy" not in have:
                    headers.append((b"content-security-policy", csp.encode()))
                if api and b"cache-control" not in have:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_unsafe_chars(text: str) -> bool:
    """Whether ``text`` holds a control character or a bidirectional/format character (e.g. U+202E).

    >>> has_unsafe_chars("MEX"), has_unsafe_chars("ME\\u202eX"), has_unsafe_chars("a\\r\\nb")
    (False, True, True)
    """
    return bool(_CONTROL.search(text)) or any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in text)


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """A Content-Disposition header value (RFC 6266) that cannot be broken by the name.

    An ASCII fallback with every risky character replaced, and the exact name as ``filename*`` (RFC 8187).

    >>> content_disposition('compliance-"x".csv')
    'attachment; filename="compliance-_x_.csv"; filename*=UTF-8\\'\\'compliance-%22x%22.csv'
    """
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename) or "download"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralise_cell(cell: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP CSV injection).

    A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with ``'``, unless it is
    a plain number.

    >>> neutralise_cell("=HYPERLINK(\\"http://x\\")"), neutralise_cell("-12.5"), neutralise_cell("@SUM(A1)")
    ('\\'=HYPERLINK("http://x")', '-12.5', "'@SUM(A1)")
    """
    if cell.startswith(_FORMULA_START) and not _NUMBER.match(cell):
        return "'" + cell
    return cell


def neutralise_csv(text: str) -> str:
    """The same CSV with every cell passed through :func:`neutralise_cell`; the one way the API serves CSV.

    >>> neutralise_csv('id,note\\r\\nS-1,=1+2\\r\\nS-2,"+x,y"\\r\\n')
    'id,note\\r\\nS-1,\\'=1+2\\r\\nS-2,"\\'+x,y"\\r\\n'
    """
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    for row in csv.reader(io.StringIO(text, newline="")):
        w.writerow([neutralise_cell(c) for c in row])
    return out.getvalue()


def party_code(value: str) -> str:
    """A party code from a request: ASCII letters, upper-cased, 2 to 16 of them; ValueError otherwise.

    >>> party_code("mex")
    'MEX'
    >>> party_code("mıx")  # a dotless i upper-cases to I: refused before upper-casing
    Traceback (most recent call last):
    ...
    ValueError: a party code is 2 to 16 ASCII letters (e.g. MEX)
    """
    code = value.upper() if value.isascii() else ""
    if not _PARTY.match(code):
        raise ValueError("a party code is 2 to 16 ASCII letters (e.g. MEX)")
    return code


_PARTY = re.compile(r"^[A-Z]{2,16}\Z")


def style_hashes_csp(html: str) -> str:
    """A Content-Security-Policy for a standalone HTML document: its own ``<style>`` blocks (by hash), no script,
    sandboxed, framed only by this origin (the workspace shows the partner report in a frame).

    >>> style_hashes_csp("<style>b{}</style>").split(";")[1].strip().startswith("style-src 'sha256-")
    True
    """
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S | re.I)
    ]
    return (
        f"default-src 'none'; style-src {' '.join(hashes) or chr(39) + 'none' + chr(39)}; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
    )
