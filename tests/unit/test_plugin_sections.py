"""``[plugin:NAME]`` sections: per-plugin settings given by the operator, checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotgun_events.config.load import load_config_with_warnings
from shotgun_events.config.plugin_sections import PluginSettings, unknown_plugin_warnings
from shotgun_events.errors import ConfigError

from .test_config import MINIMAL, write


def load(tmp_path: Path, extra: str) -> tuple[dict[str, PluginSettings], list[str]]:
    config, warnings = load_config_with_warnings(write(tmp_path, MINIMAL + extra), environ={})
    return dict(config.plugin_settings), warnings


def test_no_sections_means_no_settings(tmp_path: Path) -> None:
    settings, warnings = load(tmp_path, "")
    assert settings == {} and warnings == []


def test_every_key_is_read_and_unset_keys_stay_none(tmp_path: Path) -> None:
    # Given two plugin sections, one full and one with a single key
    extra = (
        "\n[plugin:shotStatusRollup]\nprojects = 122, Big Show\nignore_own_events = yes\n"
        "concurrency = 8\norder_by = Entity\nexecutor = celery\nmax_calls_per_second = 2.5\n"
        "\n[plugin:logArgs]\norder_by = meta.entity_id\nmax_calls_per_second = 0\n"
    )
    # When the file is loaded
    settings, warnings = load(tmp_path, extra)
    # Then the values are typed, names are kept apart from ids, and nothing is warned about
    assert warnings == []
    assert settings["shotStatusRollup"] == PluginSettings(
        name="shotStatusRollup",
        projects=(122, "Big Show"),
        ignore_own_events=True,
        concurrency=8,
        order_by="entity",
        executor="celery",
        max_calls_per_second=2.5,
    )
    assert settings["logArgs"] == PluginSettings(
        name="logArgs", order_by="meta.entity_id", max_calls_per_second=0
    )


def test_unknown_key_in_a_plugin_section_is_a_warning(tmp_path: Path) -> None:
    settings, warnings = load(tmp_path, "\n[plugin:logArgs]\nconcurency = 4\n")
    assert settings["logArgs"].concurrency is None
    assert len(warnings) == 1 and "[plugin:logArgs] concurency: unknown key" in warnings[0]


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("concurrency = 0", "concurrency"),
        ("concurrency = many", "concurrency"),
        ("concurrency = 10000", "concurrency"),
        ("order_by = entity type", "order_by"),
        ("executor = dask", "executor"),
        ("ignore_own_events = maybe", "ignore_own_events"),
        ("projects = 1,,2", "projects"),
        ("max_calls_per_second = -1", "max_calls_per_second"),
        ("max_calls_per_second = fast", "max_calls_per_second"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(
    tmp_path: Path, line: str, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"\n[plugin:logArgs]\n{line}\n")
    message = str(caught.value)
    assert "\n" not in message and "[plugin:logArgs]" in message and named in message


def test_sections_naming_no_loaded_plugin_are_warned_about(tmp_path: Path) -> None:
    settings, _ = load(
        tmp_path, "\n[plugin:logArgs]\nconcurrency = 2\n[plugin:typo]\nconcurrency = 2\n"
    )
    warnings = unknown_plugin_warnings(settings, {"logArgs"}, "sed.conf")
    assert len(warnings) == 1 and "[plugin:typo]" in warnings[0]
