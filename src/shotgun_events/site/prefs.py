"""preferences_read: the site preferences a real site gives the API, at their defaults."""

from __future__ import annotations

from typing import Any

from .errors import ApiError

#: A new site's values (the official client's live suite checks exactly these).
PREFERENCES: dict[str, Any] = {
    "date_component_order": "month_day",
    "duration_units": "days",
    "format_currency_fields_decimal_options": "$1,000.99",
    "format_currency_fields_display_dollar_sign": False,
    "format_currency_fields_negative_options": "- $1,000",
    "format_date_fields": "08/04/22 OR 04/08/22 (depending on the Month order preference)",
    "format_float_fields": "9,999.99",
    "format_float_fields_rounding": "9.999999",
    "format_footage_fields": "10-05",
    "format_number_fields": "1,000",
    "format_time_hour_fields": "12 hour",
    "hours_per_day": 8.0,
    "support_local_storage": True,
    "enable_rv_integration": True,
    "enable_shotgun_review_for_rv": False,
    "view_master_settings": {"status_groups": [], "default_version_fields": ["code"]},
    "creative_review_settings": {"enabled": False},
}


def preferences_read(params: Any) -> dict[str, Any]:
    """All preferences, or those named in ``prefs`` (names the site lacks are left out)."""
    if params is not None and not isinstance(params, dict):
        raise ApiError("API preferences_read() expects {prefs: [names]}")
    names = (params or {}).get("prefs")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise ApiError(f"API preferences_read() prefs must be a list of names, got {names!r}")
    if not names:
        return dict(PREFERENCES)
    return {n: PREFERENCES[n] for n in names if n in PREFERENCES}
