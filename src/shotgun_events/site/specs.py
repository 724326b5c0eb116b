"""What a field and an entity type are: data type, storage, display (shared by the site)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Fields every type gets, set by the server on create/update and never by the caller.
AUTO_FIELDS = frozenset({"created_at", "updated_at", "created_by", "updated_by"})


@dataclass(frozen=True)
class FieldSpec:
    """One field of one entity type: its data type and how it is stored."""

    name: str
    data_type: str
    display: str
    editable: bool = True
    valid_values: tuple[str, ...] = ()
    valid_types: tuple[str, ...] = ()
    default: Any = None
    # multi_entity storage: "links" (own rows), "reverse" (the rows of `source`),
    # "derived" (computed from the single-entity field `source` of another type).
    link_kind: str = ""
    source: tuple[str, str] = ("", "")
    # EventLogEntry keeps its links as prebuilt JSON so the hot read does no joins.
    prebuilt: bool = False
    # Computed at read time, never stored (see query.VIRTUAL), e.g. per-caller values.
    virtual: str = ""
    # A studio schema's schema_field_read reply for this field, served as it was given.
    reply: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def is_entity(self) -> bool:
        """True for single-entity link fields."""
        return self.data_type == "entity"

    @property
    def is_multi(self) -> bool:
        """True for multi-entity link fields."""
        return self.data_type == "multi_entity"


@dataclass
class EntitySpec:
    """One entity type: display name, the field used as a link's name, and its fields."""

    name: str
    display: str
    name_field: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    # A studio schema's schema_entity_read reply for this type, served as it was given.
    reply: dict[str, Any] | None = None
