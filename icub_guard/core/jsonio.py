"""The one JSON reader and writer for everything icub_guard exchanges with peers.

Reading is bounded before any work is done: a size cap, a nesting-depth cap
(checked by a linear scan, so a 1,000-deep payload never reaches the recursive
parser), an integer-length cap (Python refuses to convert > 4,300 digits, with a
ValueError that must not look like a configuration error), and no NaN/Infinity.
Everything it rejects raises `InputError`. Writing is strict JSON: non-finite
floats become `null`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import InputError

MAX_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_INT_DIGITS = 32


def _check_depth(text: str, max_depth: int) -> None:
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise InputError(f"JSON is nested deeper than {max_depth} levels")
        elif ch in "]}":
            depth -= 1


def _parse_int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_INT_DIGITS:
        raise InputError(f"JSON integer has more than {MAX_INT_DIGITS} digits")
    return int(s)


def _parse_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise InputError(f"JSON number {s[:20]!r} is out of range")
    return v


def _no_constant(name: str):
    raise InputError(f"JSON may not contain {name}")


def loads(text: str | bytes, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a peer's JSON, or raise `InputError` saying what is wrong with it."""
    if isinstance(text, bytes | bytearray):
        if len(text) > max_bytes:
            raise InputError(f"JSON payload is {len(text)} bytes; at most {max_bytes} allowed")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"JSON payload is not UTF-8: {exc}") from exc
    if not isinstance(text, str):
        raise InputError(f"JSON payload must be text, got {type(text).__name__}")
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InputError(f"JSON payload is over {max_bytes} bytes")
    _check_depth(text, max_depth)
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"not valid JSON: {exc}") from exc


def strict(value: Any) -> Any:
    """A copy with every non-finite float replaced by None (JSON null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Strict, compact JSON (NaN/Infinity as null)."""
    return json.dumps(strict(value), separators=(",", ":"), allow_nan=False)


def get(body: Any, key: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
    """`body[key]` if it has the expected type (bool is not an int here), else `InputError`."""
    if not isinstance(body, dict):
        raise InputError(f"expected a JSON object, got {type(body).__name__}")
    if key not in body:
        if required:
            raise InputError(f"JSON object needs {key!r}")
        return default
    v = body[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(v, bool) and bool not in kinds) or not isinstance(v, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise InputError(f"{key!r} must be {names}, got {type(v).__name__}")
    return v
