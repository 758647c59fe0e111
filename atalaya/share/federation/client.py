"""HTTP to a partner node: its API with this node's token, errors that say what to fix.

>>> PartnerClient("https://mex.example", "t").url("/api/federation/match")
'https://mex.example/api/federation/match'
"""

from __future__ import annotations

from typing import Any

import httpx

from atalaya.core.errors import AtalayaError, ValidationError

TIMEOUT_S = 30.0


class PartnerError(AtalayaError):
    """A partner node refused a request or could not be reached."""


class PartnerClient:
    """A partner node's API, authenticated with the token it issued to this node."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self._client.request(method, self.url(path), **kw)
        except httpx.HTTPError as e:
            raise PartnerError(
                f"cannot reach the partner node at {self.base_url}: {e}",
                hint="check the URL given to `atalaya partners add` and that the partner's `atalaya serve` is up",
            ) from e
        if r.status_code in (401, 403):
            raise PartnerError(
                f"the partner node refused this node's token ({r.status_code}) for {path}",
                hint="ask the partner's admin for a valid token of a liaison user; update it with `partners add`",
            )
        if r.status_code >= 400:
            try:
                body = r.json()
                inner = body.get("detail", r.text)
                if isinstance(inner, dict):  # HTTPException(detail={"detail": …, "hint": …})
                    body = inner
                    inner = inner.get("detail", r.text)
                detail, hint = str(inner), str(body.get("hint") or "")
            except ValueError:
                detail, hint = r.text[:300], ""
            raise PartnerError(f"the partner node answered {r.status_code} to {path}: {detail}", hint=hint or None)
        return r

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.request("POST", path, json=body).json()
        if not isinstance(data, dict):
            raise ValidationError(f"the partner node's answer to {path} is not a JSON object")
        return data

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()
