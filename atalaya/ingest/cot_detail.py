"""CoT events through lxml: the ``attrs`` tail of an event (its other attributes and its whole ``detail``)."""

from __future__ import annotations

import json
import re
from typing import Any


class NeedsParserError(Exception):
    """The regex fast path cannot vouch for this event."""


def tail_of_text(text: str) -> str:
    """:func:`tail_json` of an event's text; :class:`NeedsParserError` when lxml does not accept it."""
    from lxml import etree

    try:
        return tail_json(parse_xml(text))
    except (etree.XMLSyntaxError, ValueError) as e:
        raise NeedsParserError from e


_TRAILING_JUNK_TEXT = re.compile(r"(?:\s|<\?xml[^>]*\?>)+\Z")


def parse_xml(text: str) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(_TRAILING_JUNK_TEXT.sub("", text), parser)


MAX_ATTRS_CHARS = 64 * 1024
"""Longest ``attrs`` JSON kept for one event; past it ``detail`` children are dropped, last first, and named in
``"truncated"`` (a base64 image or a long chat log must not swell the lake; the event itself is bounded by
:attr:`~atalaya.ingest.base.ReaderLimits.max_line_bytes`)."""
MAX_DETAIL_DEPTH = 32
"""``detail`` elements nested deeper than this are not kept in ``attrs`` (the XML parser's own limit is 256)."""
_EVENT_COLUMNS = frozenset(("version", "uid", "time", "type", "how"))  # columns, or the head of attrs


def _element_dict(el: Any, depth: int) -> dict[str, Any]:
    """An element as a dict: its attributes, ``"#text"`` for its text, its children by tag (a list when repeated)."""
    out: dict[str, Any] = dict(el.attrib)
    text = (el.text or "").strip()
    if text:
        out["#text"] = text
    if depth >= MAX_DETAIL_DEPTH:
        return out
    for ch in el:
        tag = ch.tag
        if not isinstance(tag, str):  # comments, processing instructions
            continue
        v = _element_dict(ch, depth + 1)
        prev = out.get(tag)
        if prev is None:
            out[tag] = v
        elif isinstance(prev, list):
            prev.append(v)
        else:
            out[tag] = [prev, v]
    return out


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def tail_json(ev: Any) -> str:
    """The rest of an event's ``attrs`` JSON after the head (``{"affiliation":…,"type":…,"how":…``).

    Event attributes without a column of their own (``stale``, ``start``, ``access``, ``qos``…), the point's
    ``le``, and ``detail`` whole (:func:`_element_dict`), capped at :data:`MAX_ATTRS_CHARS`.
    """
    extra: dict[str, Any] = {k: v for k, v in ev.attrib.items() if k not in _EVENT_COLUMNS}
    pt = ev.find("point")
    if pt is not None and pt.get("le") is not None:
        extra["le"] = pt.get("le")
    det = ev.find("detail")
    if det is not None:
        extra["detail"] = _element_dict(det, 0)
    if not extra:
        return "}"
    body = dumps(extra)
    if len(body) > MAX_ATTRS_CHARS:
        detail: dict[str, Any] = extra.get("detail") or {}
        dropped: list[str] = []
        keys = [k for k in detail if k != "#text"]
        while len(body) > MAX_ATTRS_CHARS and keys:
            k = keys.pop()
            del detail[k]
            dropped.append(k)
            extra["truncated"] = dropped
            body = dumps(extra)
        if len(body) > MAX_ATTRS_CHARS:
            extra = {"truncated": ["*"]}
            body = dumps(extra)
    return "," + body[1:]
