"""TAXII 2.1 (OASIS CS01) under ``/taxii2/``: discovery, one API root, collections, objects, manifests, versions,
status, and DELETE as a retraction.

Who sees what:

* a **collection** belongs to a party and a product kind ("sites for MEX"); a partner's user sees only its
  party's collections (any other answers 404, as if it did not exist); this node's own users see them all;
* every object, manifest record and version a page returns goes through the egress chokepoint
  (:meth:`~atalaya.api.deps.AppState.release_of`, the same call every other API route makes), so markings and
  agreements apply exactly as elsewhere, and each page released to a partner is one ``dissemination`` entry in
  the transparency log. An object the egress withholds is skipped (the page may hold fewer than ``limit``);
* only this node's own analysts and admins may add objects (POST) or retract them (DELETE); partners read.

Authentication: ``Authorization: Bearer`` with an API token or a bearer login session, or HTTP Basic with the
user name and an **API token as the password** (what TAXII clients such as taxii2-client send with ``user`` and
``password``). An account password is never accepted here: it would travel with every request and cost a scrypt
check each time. Failed Basic attempts count in the same log-in throttle as ``POST /api/auth/login``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from atalaya.api.deps import AppState, StateDep
from atalaya.api.routes_auth import client_address
from atalaya.api.users import User, session_user, user_for_token
from atalaya.core.errors import ValidationError
from atalaya.share import taxii_store as ts

TAXII = "application/taxii+json;version=2.1"
"""The TAXII 2.1 media type of every request and response body."""
STIX = "application/stix+json;version=2.1"
"""The media type of the objects in a collection."""
ROOT = "atalaya"
"""The one API root: ``/taxii2/atalaya/``."""
MAX_CONTENT = 10 * 1024 * 1024
"""Largest POST body accepted (the API root's ``max_content_length``)."""
DEFAULT_LIMIT = ts.MAX_PAGE
"""Page size when a request gives no ``limit``."""
_REALM = 'Basic realm="atalaya-taxii", Bearer'


class TaxiiError(Exception):
    """A TAXII error message (section 3.6.1) with its HTTP status."""

    def __init__(self, status: int, title: str, description: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description
        self.headers = dict(headers or {})


def taxii_response(
    body: Mapping[str, Any] | None, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A response with the TAXII media type (no body for ``None``), never cached."""
    content = b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    hdrs = {"Cache-Control": "no-store", **(headers or {})}
    return Response(content=content, status_code=status, media_type=TAXII, headers=hdrs)


def _error(e: TaxiiError) -> Response:
    return taxii_response({"title": e.title, "description": e.description, "http_status": str(e.status)},
                          e.status, e.headers)  # fmt: skip


def _acceptable(accept: str) -> bool:
    """Whether an Accept header admits TAXII 2.1 (missing, ``*/*``, ``application/*`` or the TAXII type)."""
    if not accept.strip():
        return True
    for rng in accept.split(","):
        mtype, *params = (p.strip() for p in rng.split(";"))
        kv = dict(p.partition("=")[::2] for p in params if "=" in p)
        if kv.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        mtype = mtype.lower()
        if mtype in ("*/*", "application/*"):
            return True
        if mtype == "application/taxii+json" and kv.get("version", "2.1").strip() == "2.1":
            return True
    return False


def _taxii_content_type(ctype: str) -> bool:
    mtype, *params = (p.strip() for p in ctype.split(";"))
    kv = dict(p.partition("=")[::2] for p in params if "=" in p)
    return mtype.lower() == "application/taxii+json" and kv.get("version", "2.1").strip() == "2.1"


class TaxiiRoute(APIRoute):
    """Checks Accept (406) and, on a body, Content-Type (415); turns a :class:`TaxiiError` into a TAXII error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if not _acceptable(request.headers.get("accept", "")):
                return _error(TaxiiError(406, "Not Acceptable", f"this server answers only in {TAXII}: send it in "
                                         "the Accept header"))  # fmt: skip
            if request.method == "POST" and not _taxii_content_type(request.headers.get("content-type", "")):
                return _error(TaxiiError(415, "Unsupported Media Type", f"send the envelope as Content-Type: {TAXII}"))
            try:
                return await handler(request)
            except TaxiiError as e:
                return _error(e)

        return route


router = APIRouter(prefix="/taxii2", tags=["taxii"], route_class=TaxiiRoute)


# --------------------------------------------------------------------------- authentication


def _unauthorised(why: str) -> TaxiiError:
    return TaxiiError(401, "Unauthorized", why, {"WWW-Authenticate": _REALM})


def _basic(request: Request, state: AppState, cred: str) -> User:
    try:
        name, sep, secret = base64.b64decode(cred, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorised("malformed Basic credentials: send base64(user:API token)") from None
    if not sep or not name or not secret or len(name) > 80 or len(secret) > 256:
        raise _unauthorised("Basic credentials are the user name and an API token, joined by ':'")
    addr = client_address(request)
    wait = state.throttle.retry_after(name, addr)
    if wait:
        raise TaxiiError(429, "Too Many Requests", f"too many failed log-ins for this name or from this address: try "
                         f"again in {wait} s", {"Retry-After": str(wait)})  # fmt: skip
    user = user_for_token(state.store, secret) or session_user(state.store, secret, kind="bearer")
    if user is None or not hmac.compare_digest(user.username.encode(), name.encode()):
        state.throttle.fail(name, addr)
        raise _unauthorised(
            "wrong user name or API token (an account password is not accepted here: make an API token with "
            "`atalaya users token` or POST /api/auth/tokens), or the token expired"
        )
    return user


def taxii_user(request: Request, state: AppState) -> User:
    """The user of a TAXII request (Bearer token or session, or Basic with an API token); 401 otherwise."""
    auth = request.headers.get("authorization", "")
    scheme, _, cred = auth.partition(" ")
    cred = cred.strip()
    if scheme.lower() == "basic" and cred:
        return _basic(request, state, cred)
    if scheme.lower() == "bearer" and cred and len(cred) <= 256:
        user = session_user(state.store, cred, kind="bearer") or user_for_token(state.store, cred)
        if user is not None:
            return user
        raise _unauthorised("the bearer token is unknown, expired or revoked")
    raise _unauthorised("send Authorization: Bearer API-TOKEN, or Basic with your user name and an API token")


# --------------------------------------------------------------------------- collections and filters


def _own(state: AppState, user: User) -> bool:
    return user.party == state.workspace.party


def _writer(state: AppState, user: User) -> bool:
    return _own(state, user) and user.role in ("analyst", "admin")


def _collection(state: AppState, user: User, collection_id: str) -> ts.Collection:
    """The collection if ``user`` may read it; 404 otherwise (a partner does not learn others exist)."""
    c = ts.get_collection(state.store, collection_id) if len(collection_id) <= 80 else None
    if c is None or not (_own(state, user) or c.party == user.party):
        raise TaxiiError(404, "Collection Not Found", f"no collection {collection_id[:80]!r} for this user: list "
                         f"yours at /taxii2/{ROOT}/collections/")  # fmt: skip
    return c


def _collection_resource(state: AppState, user: User, c: ts.Collection) -> dict[str, Any]:
    out: dict[str, Any] = {"id": c.id, "title": c.title, "can_read": True, "can_write": _writer(state, user),
                           "media_types": [STIX]}  # fmt: skip
    if c.description:
        out["description"] = c.description
    return out


def _values(request: Request, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for v in request.query_params.getlist(key):
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return tuple(out)


_MATCH = {"match[id]", "match[type]", "match[version]", "match[spec_version]"}


def _filters(
    request: Request, *, versions: Sequence[str] = ("last",), allow: frozenset[str] = frozenset(_MATCH)
) -> ts.Filters:
    q = request.query_params
    unknown = sorted(k for k in q if k.startswith("match[") and k not in allow)
    if unknown:
        raise TaxiiError(400, "Bad Request", f"unsupported filter(s) {', '.join(unknown)} here: use "
                         f"{', '.join(sorted(allow)) or 'none'}")  # fmt: skip
    after: int | None = None
    if "added_after" in q:
        try:
            after = ts.parse_timestamp(q["added_after"])
        except ValueError as e:
            raise TaxiiError(400, "Bad Request", f"added_after: {e}") from None
    vers = _values(request, "match[version]") or tuple(versions)
    for v in vers:
        if v not in ("last", "first", "all"):
            try:
                ts.parse_timestamp(v)
            except ValueError as e:
                raise TaxiiError(400, "Bad Request", f"match[version]: {e} (or use last, first, all)") from None
    return ts.Filters(added_after_us=after, ids=_values(request, "match[id]"), types=_values(request, "match[type]"),
                      versions=vers, spec_versions=_values(request, "match[spec_version]"))  # fmt: skip


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or int(raw) < 1:
        raise TaxiiError(400, "Bad Request", f"limit {raw[:20]!r} is not a positive whole number")
    return min(int(raw), ts.MAX_PAGE)  # a larger limit is answered with the largest page this server gives


def _page(state: AppState, cid: str, filters: ts.Filters, request: Request) -> ts.Page:
    try:
        return ts.query(state.store, cid, filters, limit=_limit(request), cursor=request.query_params.get("next"))
    except ValueError as e:
        raise TaxiiError(400, "Bad Request", str(e)) from None


def _released(
    state: AppState, user: User, rows: Sequence[ts.StoredObject], payload: Callable[[ts.StoredObject], Any]
) -> list[tuple[ts.StoredObject, Any, bool]]:
    """The rows the egress releases to ``user``, in order: ``(row, payload as released, released unchanged)``.

    One release per product kind in the page (a collection usually holds one). ``unchanged`` is true when the
    egress let the payload out as it was given (the very object: no caveat transformed it).
    """
    by_kind: dict[str, list[dict[str, Any]]] = {}
    given: dict[str, Any] = {}
    for r in rows:
        ref = f"{r.stix_id}@{r.version}"
        given[ref] = payload(r)
        by_kind.setdefault(r.kind, []).append(
            {"ref": ref, "marking": r.marking, "audience": r.about, "payload": given[ref]}
        )
    out: dict[str, Any] = {}
    for kind, items in by_kind.items():
        for it in state.release_of(user, kind, items, id_key="ref").items:
            out[it["ref"]] = it["payload"]
    return [(r, out[k], out[k] is given[k]) for r in rows if (k := f"{r.stix_id}@{r.version}") in out]


def _objects_response(page: ts.Page, rel: Sequence[tuple[ts.StoredObject, Any, bool]]) -> Response:
    """An envelope of released objects; an object released unchanged is sent as its stored JSON text."""
    texts = [r.body if same else json.dumps(p, separators=(",", ":"), ensure_ascii=False) for r, p, same in rel]
    head = json.dumps(_envelope(page, "objects", []), separators=(",", ":"))
    body = head[:-1] + (',"objects":[' + ",".join(texts) + "]}" if texts else "}")
    return Response(content=body.encode(), media_type=TAXII,
                    headers={"Cache-Control": "no-store", **_added_headers(rel)})  # fmt: skip


def _added_headers(released: Sequence[tuple[ts.StoredObject, Any, bool]]) -> dict[str, str]:
    if not released:
        return {}
    return {
        "X-TAXII-Date-Added-First": released[0][0].date_added,
        "X-TAXII-Date-Added-Last": released[-1][0].date_added,
    }


def _envelope(page: ts.Page, key: str, items: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"more": page.more}
    if page.next:
        body["next"] = page.next
    if items:
        body[key] = items
    return body


def _body(r: ts.StoredObject) -> Any:
    return json.loads(r.body)


def _manifest_record(r: ts.StoredObject) -> dict[str, Any]:
    return {"id": r.stix_id, "date_added": r.date_added, "version": r.version, "media_type": STIX}


# --------------------------------------------------------------------------- endpoints


@router.get("/", summary="TAXII discovery")
def discovery(request: Request, state: StateDep) -> Response:
    """The TAXII server's discovery resource: its one API root."""
    taxii_user(request, state)
    return taxii_response({"title": f"Atalaya TAXII server of {state.workspace.party}",
                           "description": "STIX 2.1 products released under this node's markings and agreements",
                           "default": f"/taxii2/{ROOT}/", "api_roots": [f"/taxii2/{ROOT}/"]})  # fmt: skip


@router.get(f"/{ROOT}/", summary="TAXII API root")
def api_root(request: Request, state: StateDep) -> Response:
    """The API root's information."""
    taxii_user(request, state)
    return taxii_response({"title": f"{state.workspace.party} products", "versions": [TAXII],
                           "max_content_length": MAX_CONTENT})  # fmt: skip


@router.get(f"/{ROOT}/collections/", summary="TAXII collections")
def collections(request: Request, state: StateDep) -> Response:
    """The collections this user may read: its party's (this node's own users: all)."""
    user = taxii_user(request, state)
    cs = ts.list_collections(state.store, None if _own(state, user) else user.party)
    return taxii_response({"collections": [_collection_resource(state, user, c) for c in cs]} if cs else {})


@router.get(f"/{ROOT}/collections/{{collection_id}}/", summary="TAXII collection")
def collection(collection_id: str, request: Request, state: StateDep) -> Response:
    """One collection."""
    user = taxii_user(request, state)
    return taxii_response(_collection_resource(state, user, _collection(state, user, collection_id)))


@router.get(f"/{ROOT}/collections/{{collection_id}}/objects/", summary="TAXII objects")
def get_objects(collection_id: str, request: Request, state: StateDep) -> Response:
    """A page of objects (filters ``added_after``, ``match[…]``; ``limit`` and ``next``), released by the egress."""
    user = taxii_user(request, state)
    c = _collection(state, user, collection_id)
    page = _page(state, c.id, _filters(request), request)
    return _objects_response(page, _released(state, user, page.rows, _body))


@router.get(f"/{ROOT}/collections/{{collection_id}}/manifest/", summary="TAXII manifest")
def get_manifest(collection_id: str, request: Request, state: StateDep) -> Response:
    """A page of manifest records (id, date_added, version, media type) of the objects the egress releases."""
    user = taxii_user(request, state)
    c = _collection(state, user, collection_id)
    page = _page(state, c.id, _filters(request), request)
    rel = _released(state, user, page.rows, _manifest_record)
    return taxii_response(_envelope(page, "objects", [p for _, p, _ in rel]), headers=_added_headers(rel))


def _object_id(object_id: str) -> str:
    try:
        ts.check_object({"id": object_id, "type": object_id.partition("--")[0]})
    except ValidationError as e:
        raise TaxiiError(400, "Bad Request", f"{e.message}: {e.hint}") from None
    return object_id


def _not_found(object_id: str) -> TaxiiError:
    return TaxiiError(404, "Object Not Found", f"no object {object_id} in this collection for this user (or none "
                      "matching the filters)")  # fmt: skip


@router.get(f"/{ROOT}/collections/{{collection_id}}/objects/{{object_id}}/", summary="TAXII object")
def get_object(collection_id: str, object_id: str, request: Request, state: StateDep) -> Response:
    """The versions of one object (``match[version]``, default the last), released by the egress."""
    user = taxii_user(request, state)
    c = _collection(state, user, collection_id)
    f = _filters(request, allow=frozenset({"match[version]", "match[spec_version]"}))
    page = _page(state, c.id, replace(f, ids=(_object_id(object_id),)), request)
    rel = _released(state, user, page.rows, _body)
    if not rel and not page.more:
        raise _not_found(object_id)
    return _objects_response(page, rel)


@router.get(f"/{ROOT}/collections/{{collection_id}}/objects/{{object_id}}/versions/", summary="TAXII versions")
def get_versions(collection_id: str, object_id: str, request: Request, state: StateDep) -> Response:
    """The versions of one object, oldest first by date_added, released by the egress."""
    user = taxii_user(request, state)
    c = _collection(state, user, collection_id)
    f = _filters(request, allow=frozenset({"match[spec_version]"}), versions=("all",))
    page = _page(state, c.id, replace(f, ids=(_object_id(object_id),)), request)
    rel = _released(state, user, page.rows, lambda r: r.version)
    if not rel and not page.more:
        raise _not_found(object_id)
    return taxii_response(_envelope(page, "versions", [p for _, p, _ in rel]), headers=_added_headers(rel))


@router.delete(f"/{ROOT}/collections/{{collection_id}}/objects/{{object_id}}/", summary="TAXII delete (retract)")
def delete_object(collection_id: str, object_id: str, request: Request, state: StateDep) -> Response:
    """Retract versions of an object (default all; ``match[version]``, ``match[spec_version]``): hidden from every
    reader from now on, kept with who and when for audit. This node's analysts and admins only."""
    user = taxii_user(request, state)
    c = _collection(state, user, collection_id)
    if not _writer(state, user):
        raise TaxiiError(403, "Forbidden", "only this node's analysts and admins retract objects")
    f = _filters(request, allow=frozenset({"match[version]", "match[spec_version]"}), versions=("all",))
    n = ts.retract(state.store, c.id, _object_id(object_id), actor=user.username, versions=f.versions,
                   spec_versions=f.spec_versions, reason=request.headers.get("x-atalaya-reason", "")[:500])  # fmt: skip
    if n == 0:
        raise _not_found(object_id)
    return taxii_response(None)


def _add(state: AppState, user: User, c: ts.Collection, raw: bytes) -> dict[str, Any]:
    try:
        env = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise TaxiiError(400, "Bad Request", f"the body is not JSON: {e}") from None
    objs = env.get("objects") if isinstance(env, dict) else None
    if not isinstance(objs, list) or not all(isinstance(o, dict) for o in objs):
        raise TaxiiError(400, "Bad Request", 'send an envelope: {"objects": [STIX 2.1 objects]}')
    good: list[dict[str, Any]] = []
    successes: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for o in objs:
        try:
            sid, _, version, _ = ts.check_object(o)
        except ValidationError as e:
            failures.append({"id": str(o.get("id", ""))[:300], "message": f"{e.message}: {e.hint}"})
            continue
        good.append(o)
        successes.append({"id": sid, **({"version": version} if version else {})})
    if good:
        ts.publish(state.store, c, good, kind=c.kind, marking=c.marking, about=[c.party])
    record = {
        "id": str(uuid.uuid4()), "status": "complete",
        "request_timestamp": ts.format_timestamp(int(datetime.now(UTC).timestamp() * 1_000_000)),
        "total_count": len(objs), "success_count": len(successes), "successes": successes,
        "failure_count": len(failures), "failures": failures, "pending_count": 0,
    }  # fmt: skip
    ts.save_status(state.store, c.id, user.username, record)
    return record


@router.post(f"/{ROOT}/collections/{{collection_id}}/objects/", summary="TAXII add objects", status_code=202)
async def add_objects(collection_id: str, request: Request, state: StateDep) -> Response:
    """Add an envelope of STIX 2.1 objects (this node's analysts and admins only), with the collection's marking
    and product kind; answers a complete status resource."""
    user = await run_in_threadpool(taxii_user, request, state)
    c = await run_in_threadpool(_collection, state, user, collection_id)
    if not _writer(state, user):
        raise TaxiiError(
            403, "Forbidden", "partners read collections; only this node's analysts and admins add objects"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CONTENT:
        raise TaxiiError(413, "Payload Too Large", f"the body is over {MAX_CONTENT} bytes: send fewer objects at once")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_CONTENT:
            raise TaxiiError(413, "Payload Too Large", f"the body is over {MAX_CONTENT} bytes: send fewer objects")
    return taxii_response(await run_in_threadpool(_add, state, user, c, bytes(raw)), 202)


@router.get(f"/{ROOT}/status/{{status_id}}/", summary="TAXII status")
def get_status(status_id: str, request: Request, state: StateDep) -> Response:
    """A status resource of objects this user added."""
    user = taxii_user(request, state)
    got = ts.get_status(state.store, status_id) if len(status_id) <= 80 else None
    if got is None or got[0] != user.username:
        raise TaxiiError(404, "Status Not Found", f"no status {status_id[:80]!r} of yours")
    return taxii_response(got[1])
