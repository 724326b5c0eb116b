"""text_search (``query_display_name_cache``): entities whose name holds every word typed.

The text is split into lower-case words (``terms``); an entity matches when its name
(the field its links are named by) contains each of them, ignoring case, and it
passes the filters given for its type and the project ids given. Matches come type by
type in the order the types were given, by name, at most ``max_results`` of them.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .reads import Reader
from .schema import Schema

MIN_TEXT = 3


class TextSearch:
    """Searches display names through the reader; callers hold the store lock."""

    def __init__(self, schema: Schema, reader: Reader) -> None:
        """Search the types of ``schema`` with ``reader``."""
        self.schema = schema
        self.reader = reader

    def search(self, params: Any) -> dict[str, Any]:
        """The reply of a real site's global search."""
        p = params if isinstance(params, dict) else {}
        text = p.get("text")
        if not isinstance(text, str) or len(text.strip()) < MIN_TEXT:
            raise ApiError(f"text_search() needs a text of at least {MIN_TEXT} characters")
        types = p.get("entity_types")
        if not isinstance(types, dict) or not types:
            raise ApiError("text_search() needs entity_types: {type: filters}")
        project_ids = p.get("project_ids") or []
        limit = p.get("max_results")
        if not isinstance(project_ids, list) or not all(isinstance(i, int) for i in project_ids):
            raise ApiError("text_search() project_ids must be a list of ids")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ApiError(f"text_search() max_results must be a positive number, got {limit!r}")
        terms = text.lower().split()
        matches: list[dict[str, Any]] = []
        for type_name, filters in types.items():
            matches.extend(self._type_matches(type_name, filters, terms, project_ids))
        return {"matches": matches[:limit] if limit else matches, "terms": terms}

    def _type_matches(
        self, type_name: str, filters: Any, terms: list[str], project_ids: list[int]
    ) -> list[dict[str, Any]]:
        spec = self.reader.entity_spec(type_name, "text_search")
        name = spec.name_field
        if name not in spec.fields:
            return []
        conditions: list[Any] = [
            {"path": name, "relation": "contains", "values": [t]} for t in terms
        ]
        if filters:
            conditions.append(filters)
        if project_ids and "project" in spec.fields:
            projects = [{"type": "Project", "id": i} for i in project_ids]
            conditions.append({"path": "project", "relation": "in", "values": projects})
        wanted = [
            f for f in (name, "project", "image", "sg_status_list", "entity") if f in spec.fields
        ]
        rows = self.reader.rows(
            spec.name, {"logical_operator": "and", "conditions": conditions}, wanted
        )
        rows.sort(key=lambda r: (str(r.get(name) or "").lower(), r["id"]))
        out = []
        for row in rows:
            link = row.get("entity")
            out.append(
                {
                    "id": row["id"],
                    "type": spec.name,
                    "name": row.get(name),
                    "project_id": (row.get("project") or {}).get("id"),
                    "image": row.get("image"),
                    "links": [link["type"], link["name"]] if link else ["", ""],
                    "status": row.get("sg_status_list"),
                }
            )
        return out
