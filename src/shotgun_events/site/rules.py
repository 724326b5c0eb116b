"""What value each data type accepts: the rules a real site applies to writes and filters.

One rule per data type, checked the same way for a written value and for a filter
value (``None`` always passes: it clears a field, or matches an empty one):

- number, duration, percent, timecode: an integer; float, currency: a number;
- checkbox: a boolean; text, list, status_list, uuid, entity_type: a string
  (list and status_list values are then checked against the field's valid values);
- date ``YYYY-MM-DD`` and date_time ``YYYY-MM-DDTHH:MM:SSZ``: real calendar dates;
- color: ``pipeline_step``, ``R,G,B`` (each 0-255) or a CSS colour name such as
  ``Black`` or ``green`` (any case), as the Gantt bar colour picker offers;
- tag_list: a list of tag names; footage: ``frames-subframes`` text or a number;
- password: a string; url: an object; image: only None (thumbnails are uploaded);
  serializable and any type the site does not know: any JSON value.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from .errors import ApiError
from .specs import FieldSpec

INT_TYPES = frozenset({"number", "duration", "percent", "timecode"})
REAL_TYPES = frozenset({"float", "currency"})
TEXT_TYPES = frozenset({"text", "list", "status_list", "uuid", "entity_type", "color"})
#: Stored as JSON text: their values are structures, or of more than one JSON type.
JSON_TYPES = frozenset({"serializable", "tag_list", "url", "footage"})
#: Every type with a rule of its own here (others are stored as JSON, unchecked).
KNOWN_TYPES = (
    INT_TYPES
    | REAL_TYPES
    | TEXT_TYPES
    | JSON_TYPES
    | {"checkbox", "date", "date_time", "entity", "multi_entity", "image", "password"}
)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_RGB = re.compile(r"^(\d{1,3}),(\d{1,3}),(\d{1,3})$")
_FOOTAGE = re.compile(r"^\d+-\d+$")

#: The CSS named colours (CSS Color Module Level 4).
_CSS_NAMES = """aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue
    blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk
    crimson cyan darkblue darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki
    darkmagenta darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen
    darkslateblue darkslategray darkslategrey darkturquoise darkviolet deeppink deepskyblue
    dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro ghostwhite
    gold goldenrod gray green greenyellow grey honeydew hotpink indianred indigo ivory khaki
    lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan
    lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen
    lightskyblue lightslategray lightslategrey lightsteelblue lightyellow lime limegreen linen
    magenta maroon mediumaquamarine mediumblue mediumorchid mediumpurple mediumseagreen
    mediumslateblue mediumspringgreen mediumturquoise mediumvioletred midnightblue mintcream
    mistyrose moccasin navajowhite navy oldlace olive olivedrab orange orangered orchid
    palegoldenrod palegreen paleturquoise palevioletred papayawhip peachpuff peru pink plum
    powderblue purple rebeccapurple red rosybrown royalblue saddlebrown salmon sandybrown
    seagreen seashell sienna silver skyblue slateblue slategray slategrey snow springgreen
    steelblue tan teal thistle tomato turquoise violet wheat white whitesmoke yellow
    yellowgreen"""
CSS_COLORS = frozenset(_CSS_NAMES.split())


def stored_as_json(data_type: str) -> bool:
    """Whether values of this type are kept as JSON text (structures, or unknown types)."""
    return data_type in JSON_TYPES or data_type not in KNOWN_TYPES


def is_color(value: Any) -> bool:
    """``pipeline_step``, ``R,G,B`` with each part 0-255, or a CSS colour name."""
    if not isinstance(value, str):
        return False
    if value == "pipeline_step" or value.lower() in CSS_COLORS:
        return True
    rgb = _RGB.match(value)
    return rgb is not None and all(int(part) <= 255 for part in rgb.groups())


def _is_date(value: Any, pattern: re.Pattern[str], fmt: str) -> bool:
    if not isinstance(value, str) or not pattern.match(value):
        return False
    try:
        _dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def accepts(data_type: str, value: Any) -> bool:
    """Whether a non-None ``value`` fits ``data_type`` (unknown types take any value)."""
    if data_type in INT_TYPES:
        return _is_int(value)
    if data_type in REAL_TYPES:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if data_type == "color":
        return is_color(value)
    if data_type in TEXT_TYPES or data_type == "password":
        return isinstance(value, str)
    if data_type == "checkbox":
        return isinstance(value, bool)
    if data_type == "date":
        return _is_date(value, _DATE, "%Y-%m-%d")
    if data_type == "date_time":
        return _is_date(value, _DATE_TIME, "%Y-%m-%dT%H:%M:%SZ")
    if data_type == "tag_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if data_type == "footage":
        return _is_int(value) or (isinstance(value, str) and bool(_FOOTAGE.match(value)))
    if data_type == "url":
        return isinstance(value, dict)
    # image: thumbnails arrive by upload; a write can only clear one (None)
    return data_type != "image"


def check_value(type_name: str, f: FieldSpec, value: Any) -> Any:
    """The value as SQL stores it, or a fault naming the field when its type is wrong."""
    if value is None:
        return None
    if not accepts(f.data_type, value):
        raise ApiError(
            f"{type_name}.{f.name} is a {f.data_type} field; {value!r} is not a valid value for it"
        )
    return int(value) if f.data_type == "checkbox" else value
