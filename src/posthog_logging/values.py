"""Value conventions (§0) and property-value hygiene (Part 3) of ``docs/mapping-rules.md``.

Mastra's exporter is JavaScript, so several rules are phrased in JavaScript
terms (truthiness, ``String(v)``, ``JSON.stringify``).  This module gives each
of them one Python function, so the mapping code reads like those rules.
Nothing here raises on odd input: every value ends up as something JSON can carry.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

#: JSON-representable values (what ``json_safe`` returns).
JsonValue = Any

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_MS_PER_DAY = 86_400_000
#: The times a timestamp can show (years 1 to 9999, as ``datetime`` can).
_MIN_MS = (1 - _EPOCH_ORDINAL) * _MS_PER_DAY
_MAX_MS = (dt.date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORDINAL) * _MS_PER_DAY - 1
_MAX_DEPTH = 64
#: Types whose values are JSON as they are (:func:`json_safe` returns them unchanged;
#: a caller on a hot path may test ``type(value) in PLAIN_TYPES`` and skip the call).
PLAIN_TYPES = frozenset({str, int, bool, type(None)})
#: Types whose values :func:`is_mapping` knows are not mappings.
_NOT_MAPPING_TYPES = PLAIN_TYPES | {float, list, tuple}
#: Types :func:`plain` returns as they are without a look at their methods.
_DATA_TYPES = PLAIN_TYPES | {dict, list, tuple}
#: Types (and their subclasses) :func:`_convert_scalar` makes plain JSON values.
_SCALAR_TYPES = (str, int, float, dt.date)
#: Largest integer a JavaScript number (and a JSON reader) holds exactly.
_MAX_SAFE_INT = 2**53

_ISO_PATTERN = re.compile(
    r"""^\s*(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    (?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})
        (?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?
    )?
    \s*(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?\s*$""",
    re.VERBOSE,
)


def is_truthy(value: Any) -> bool:
    """JavaScript truthiness: empty containers are truthy, ``0``/NaN/``""`` are not."""
    if isinstance(value, str):  # the most common: ids, names, messages
        return value != ""
    if value is None or value is False or value is True:
        return value is True
    if isinstance(value, float):
        return not math.isnan(value) and value != 0
    if isinstance(value, int):
        return value != 0
    return True


def truthy_text(value: Any) -> str | None:
    """JavaScript's ``value ? String(value) : undefined``: :func:`js_string` of a truthy
    value, None for a falsy one.  A string, the usual value, is its own text: one test,
    no further call."""
    if type(value) is str:
        return value or None
    return js_string(value) if is_truthy(value) else None


def is_mapping(value: Any) -> TypeGuard[Mapping[Any, Any]]:
    """``isinstance(value, Mapping)``, with the usual values told by their exact type
    first: nearly every mapping a span holds is a dict, and most other values are None,
    strings, numbers or lists, while the check against the abstract ``Mapping`` runs
    Python code (``ABCMeta.__instancecheck__``) every time."""
    kind = type(value)
    return kind is dict or (kind not in _NOT_MAPPING_TYPES and isinstance(value, Mapping))


def is_number(value: Any) -> TypeGuard[int | float]:
    """True for ints and floats, but not for bools (which Python counts as ints)."""
    kind = type(value)
    if kind is int or kind is float:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def js_string(value: Any) -> str:
    """JavaScript ``String(value)`` for the values a span can hold."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, (list, tuple)):
        return ",".join("" if item is None else js_string(item) for item in value)
    if is_mapping(value):
        return "[object Object]"
    if isinstance(value, (dt.datetime, dt.date)):
        return format_timestamp_ms(time_ms(value) or 0)
    return safe_str(value)


def id_text(value: Any) -> str | None:
    """An id as text (js-string), or None when ``value`` has no text that identifies.

    Strings and finite numbers are ids; so is an object whose class defines its
    own ``__str__`` (a ``UUID``, an id type).  Booleans, NaN and infinity,
    containers, bytes, plain objects (whose text is a memory address) and objects
    whose ``__str__`` raises are not: sending their text would make up an id.
    """
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bool, Mapping, list, tuple, set, frozenset)):
        return None
    if isinstance(value, (int, float)):
        return js_string(value) if math.isfinite(value) else None
    if (
        isinstance(value, (bytes, bytearray))
        or getattr(type(value), "__str__", None) is object.__str__
    ):
        return None
    try:
        return str(value)
    except Exception:  # a broken __str__: no id to send
        return None


def js_id_text(value: Any) -> str | None:
    """An id as compat mode sends it: JavaScript ``String(value)`` of the values
    JavaScript has (strings, numbers, booleans, arrays, objects, dates), else
    :func:`id_text`.  JavaScript has no bytes, sets or plain Python objects, and
    their Python text (a repr, a memory address, a placeholder for a broken
    ``__str__``) would make up an id.
    """
    if isinstance(value, (str, int, float, list, tuple, Mapping, dt.date)):
        return js_string(value)
    return id_text(value)


def _js_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def safe_str(value: Any) -> str:
    """``str(value)``, or a placeholder when its ``__str__`` raises."""
    try:
        return str(value)
    except Exception:  # a broken __str__ must not take the pipeline down
        return f"<unrepresentable {type(value).__name__}>"


def plain(value: Any) -> Any:
    """An SDK object as the plain data it stands for; anything else unchanged.

    Provider SDKs hand out pydantic models (OpenAI, Anthropic, google-genai) and
    a few protobuf-style objects with ``to_dict()``.  Their ``str()`` is no use in
    an event, so the mapping reads them through these methods first: pydantic's
    JSON mode, so bytes (Gemini's inline media) come out as base64 text.  A
    method that fails leaves the object as it is (``json_safe`` then sends its text).
    """
    if type(value) in _DATA_TYPES or isinstance(value, (list, tuple, Mapping)):
        return value
    model_dump = getattr(value, "model_dump", None)
    to_dict = getattr(value, "to_dict", None)
    try:
        if callable(model_dump):
            return model_dump(mode="json")
        if callable(to_dict):
            return to_dict()
    except Exception:  # a user object's method may fail in any way
        return value
    return value


# ---------------------------------------------------------------- times (§1.1)


def time_ms(value: Any) -> int | None:
    """*ms(t)*: a time as integer epoch milliseconds, sub-millisecond digits truncated.

    Accepts ``datetime`` (naive means UTC), ``date``, ISO-8601 strings (``Z`` or
    any offset, any number of fractional digits) and epoch **seconds** as int or
    float.  Anything else, or an impossible date, gives ``None``.
    """
    if value is None:  # an optional time that is not there, the most common
        return None
    if type(value) is float or is_number(value):  # a float first: time.time()'s seconds
        if not math.isfinite(value):
            return None
        # Round to microseconds first so 1.005 s is 1005 ms, not 1004.999...
        millis = round(value * 1_000_000) // 1000
        return millis if _MIN_MS <= millis <= _MAX_MS else None
    if isinstance(value, dt.datetime):
        return _datetime_ms(value)
    if isinstance(value, dt.date):
        return (value.toordinal() - _EPOCH_ORDINAL) * _MS_PER_DAY
    if isinstance(value, str):
        return _iso_ms(value)
    return None


def _datetime_ms(value: dt.datetime) -> int:
    offset = value.utcoffset() or dt.timedelta(0)
    naive = value.replace(tzinfo=None) - offset
    days = naive.toordinal() - _EPOCH_ORDINAL
    seconds = naive.hour * 3600 + naive.minute * 60 + naive.second
    return days * _MS_PER_DAY + seconds * 1000 + naive.microsecond // 1000


def _iso_ms(text: str) -> int | None:
    match = _ISO_PATTERN.match(text)
    if match is None:
        return None
    part = match.group
    try:
        day = dt.date(int(part("year")), int(part("month")), int(part("day")))
        hour, minute = int(part("hour") or 0), int(part("minute") or 0)
        second = int(part("second") or 0)
        dt.time(hour, minute, second)  # validates the ranges
    except ValueError:
        return None
    millis = int((part("fraction") or "0")[:3].ljust(3, "0"))
    total = (day.toordinal() - _EPOCH_ORDINAL) * _MS_PER_DAY
    total += (hour * 3600 + minute * 60 + second) * 1000 + millis
    return total - _zone_offset_ms(part("zone"))


def _zone_offset_ms(zone: str | None) -> int:
    if not zone or zone in "Zz":
        return 0
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return sign * (hours * 60 + minutes) * 60_000


#: 0 to 99 and 0 to 999 zero-padded: a lookup costs a fraction of formatting an int
#: with ``:02d`` (or ``%02d``), and every event's timestamp has four such fields.
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(100))
_THREE_DIGITS = tuple(f"{number:03d}" for number in range(1000))


def format_timestamp_ms(ms: int) -> str:
    """Part 3 timestamp: ISO-8601 UTC, exactly three fractional digits and ``Z``."""
    days, rest = divmod(ms, _MS_PER_DAY)  # rest: the ms into the day, never negative
    hours, minutes, seconds = rest // 3_600_000, rest // 60_000 % 60, rest // 1000 % 60
    return (
        f"{_day_text(days)}T{_TWO_DIGITS[hours]}:{_TWO_DIGITS[minutes]}:"
        f"{_TWO_DIGITS[seconds]}.{_THREE_DIGITS[rest % 1000]}Z"
    )


@functools.lru_cache(maxsize=16)
def _day_text(days: int) -> str:
    """The ISO date of a day since the epoch: events of a run share a few days."""
    return dt.date.fromordinal(days + _EPOCH_ORDINAL).isoformat()


def seconds_between(start_ms: int, end_ms: int) -> float:
    """Latency in float seconds computed from integer milliseconds, never rounded."""
    return (end_ms - start_ms) / 1000


# ------------------------------------------------------------ JSON (Part 3)


class _TooDeep(Exception):
    """Raised by the one-pass conversion at a container nested too deep (or in a cycle)."""


def json_safe(value: Any) -> JsonValue:
    """A JSON-safe form of ``value`` (Part 3 "everything else").

    Mappings become objects with string keys, tuples/lists/sets arrays,
    datetimes Part 3 timestamps, NaN/inf ``None``, integral floats ints (JSON
    has one number type), and other objects ``str(value)``.  Cycles and very
    deep nesting are cut with a marker instead of raising.

    A dict or list that is JSON-safe already (the common case) is returned as it
    is, not copied: callers must not change the result in place.
    """
    kind = type(value)
    if kind in PLAIN_TYPES:
        return value
    try:
        return _convert_dict(value, 0) if kind is dict else _convert(value, 0)
    except _TooDeep:
        return _convert_marking(value, set(), 0)


def json_text(value: Any) -> str:
    """*JSON text(v)*: ``JSON.stringify`` output, or ``[Non-serializable <Type>]``."""
    try:
        converted = _convert(value, 0)
    except _TooDeep:  # a cycle, or nesting JSON.stringify would not finish either
        return f"[Non-serializable {type(value).__name__}]"
    return json.dumps(converted, separators=(",", ":"), ensure_ascii=False)


def _convert(value: Any, depth: int) -> JsonValue:
    """One pass: ``value`` itself when nothing in it needs converting, else a converted
    copy; raises :class:`_TooDeep` at a container ``_MAX_DEPTH`` levels down."""
    # Exact-type checks first: spans are mostly plain dicts, lists, strings and
    # floats, and isinstance() against the abstract Mapping is the slowest test here.
    kind = type(value)
    if kind in PLAIN_TYPES:
        return value
    if kind is dict:
        return _convert_dict(value, depth)
    if kind is list:
        return _convert_list(value, depth)
    if kind is float:
        return _convert_float(value)
    if isinstance(value, _SCALAR_TYPES):
        return _convert_scalar(value)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if depth >= _MAX_DEPTH:
            raise _TooDeep
        if isinstance(value, Mapping):
            return {_key_text(key): _convert(item, depth + 1) for key, item in value.items()}
        return [_convert(item, depth + 1) for item in value]
    return _leaf_text(value)


def _convert_dict(value: dict[Any, Any], depth: int) -> JsonValue:
    if depth >= _MAX_DEPTH:
        raise _TooDeep
    depth += 1
    converted: dict[str, JsonValue] | None = None
    for key, item in value.items():
        new = item if type(item) in PLAIN_TYPES else _convert(item, depth)
        if converted is not None:
            converted[key if type(key) is str else _key_text(key)] = new
        elif new is not item or type(key) is not str:
            # The first change: copy the items before it, then go on in the copy.
            converted = {}
            for earlier, earlier_item in value.items():
                if earlier is key:
                    break
                converted[earlier] = earlier_item
            converted[key if type(key) is str else _key_text(key)] = new
    return value if converted is None else converted


def _convert_list(value: list[Any], depth: int) -> JsonValue:
    if depth >= _MAX_DEPTH:
        raise _TooDeep
    depth += 1
    converted: list[JsonValue] | None = None
    for index, item in enumerate(value):
        new = item if type(item) in PLAIN_TYPES else _convert(item, depth)
        if converted is not None:
            converted.append(new)
        elif new is not item:
            converted = value[:index]
            converted.append(new)
    return value if converted is None else converted


def _convert_float(value: float) -> JsonValue:
    if not math.isfinite(value):
        return None
    if value.is_integer() and abs(value) < _MAX_SAFE_INT:
        return int(value)
    return value if type(value) is float else float(value)


def _convert_scalar(value: Any) -> JsonValue:
    """A str, int, float or date of a subclass (or a float): its plain JSON value."""
    if isinstance(value, str):
        return str.__str__(value)  # str subclasses and str enums: the plain text
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _convert_float(value)
    return format_timestamp_ms(time_ms(value) or 0)  # a date or datetime


def _convert_marking(value: Any, active: set[int], depth: int) -> JsonValue:
    """The conversion of a value :func:`_convert` found too deep: each container
    is marked while it is being converted, so a cycle is cut at its first repeat
    (``[Circular]``) and nesting at ``_MAX_DEPTH`` (``[Too deep]``)."""
    if type(value) in PLAIN_TYPES:
        return value
    if isinstance(value, _SCALAR_TYPES):
        return _convert_scalar(value)
    if not isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return _leaf_text(value)
    marker = id(value)
    if marker in active or depth >= _MAX_DEPTH:
        return "[Circular]" if marker in active else "[Too deep]"
    active.add(marker)
    depth += 1
    try:
        if is_mapping(value):
            return {
                _key_text(key): _convert_marking(item, active, depth) for key, item in value.items()
            }
        return [_convert_marking(item, active, depth) for item in value]
    finally:
        active.discard(marker)


def _leaf_text(value: Any) -> str:
    """Any other object as text: bytes as base64 (as pydantic's JSON mode gives an SDK
    object's bytes, so the media rule, Part 2 (s), can recognise them), else ``str``."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return safe_str(value)


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else js_string(key)
