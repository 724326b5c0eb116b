"""The plugin-facing Registrar: callbacks, names, args, emails, loggers, validation."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import pytest

from shotgun_events.errors import PluginError
from shotgun_events.plugins.registrar import Callback, Registrar
from shotgun_events.testing import make_event


@pytest.fixture
def reg(tmp_path: Path) -> Registrar:
    return Registrar("myPlugin", tmp_path / "myPlugin.py", logging.getLogger("plugin.myPlugin"))


def handler(sg: Any, logger: Any, event: Any, args: Any) -> None:
    """A plain callback."""


class CallableHandler:
    def __call__(self, sg: Any, logger: Any, event: Any, args: Any) -> None:
        self.seen = (sg, logger, event, args)


def test_function_callback_is_stored_with_every_argument(reg: Registrar) -> None:
    # Given a plugin registering a function with explicit arguments
    shared: dict[str, int] = {}
    reg.registerCallback("script", "secret", handler, {"Shotgun_Task_New": None}, shared, False)
    # Then one Callback holds them, args untouched (same object)
    [cb] = reg.callbacks
    assert isinstance(cb, Callback)
    assert (cb.plugin_name, cb.name, cb.func) == ("myPlugin", "handler", handler)
    assert (cb.script_name, cb.script_key, cb.stop_on_error) == ("script", "secret", False)
    assert cb.args is shared
    assert cb.match_events == {"Shotgun_Task_New": None}
    assert cb.matches(make_event("Shotgun_Task_New"))
    assert not cb.matches(make_event("Shotgun_Task_Change"))
    # Not given: the config's default policy applies
    assert (cb.retries, cb.retry_delay) == (None, None)
    # And the key does not leak into logs through repr
    assert "secret" not in repr(cb)


def test_defaults_match_everything_and_stop_on_error(reg: Registrar) -> None:
    reg.registerCallback("s", "k", handler)
    [cb] = reg.callbacks
    assert cb.args is None and cb.stop_on_error is True
    assert cb.matches(make_event("Shotgun_Anything_Else"))


def test_callable_object_is_named_after_its_class_and_called_with_args(reg: Registrar) -> None:
    # Given a callable object and a shared list as args
    obj = CallableHandler()
    shared: list[int] = []
    reg.registerCallback("s", "k", obj, None, shared)
    [cb] = reg.callbacks
    # Then it is named as the original names it: <Class>_<hex id>
    assert cb.name == f"CallableHandler_{hex(id(obj))}" and cb.func is obj
    # When the daemon calls it / Then it gets the very same args object
    event = make_event()
    cb.func("sg", cb.logger, event, cb.args)
    assert obj.seen[3] is shared and obj.seen[2] is event


def test_partial_and_bound_method_names(reg: Registrar) -> None:
    class Holder:
        def method(self, sg: Any, logger: Any, event: Any, args: Any) -> None:
            pass

    reg.registerCallback("s", "k", Holder().method)
    reg.registerCallback("s", "k", functools.partial(lambda x, sg, lg, ev, ar: None, 1))
    partial = reg.callbacks[1].func
    assert [cb.name for cb in reg.callbacks] == ["method", f"partial_{hex(id(partial))}"]


def test_instances_of_one_class_each_have_their_own_name_and_logger(reg: Registrar) -> None:
    # Given a plugin that registers three instances of one callable class (sharedStateC)
    objects = [CallableHandler() for _ in range(3)]
    for obj in objects:
        reg.registerCallback("s", "k", obj)
    # Then each has its own name and its own logger, a child of the plugin logger
    names = [cb.name for cb in reg.callbacks]
    assert len(set(names)) == 3
    assert all(name.startswith("CallableHandler_0x") for name in names)
    assert len({id(cb.logger) for cb in reg.callbacks}) == 3
    assert all(cb.logger.name == f"plugin.myPlugin.{cb.name}" for cb in reg.callbacks)


def test_callbacks_keep_registration_order(reg: Registrar) -> None:
    def first(sg: Any, logger: Any, event: Any, args: Any) -> None: ...
    def second(sg: Any, logger: Any, event: Any, args: Any) -> None: ...

    reg.registerCallback("s", "k", second)
    reg.registerCallback("s", "k", first)
    assert [cb.name for cb in reg.callbacks] == ["second", "first"]


def test_loggers_are_the_plugin_logger_and_its_children(reg: Registrar) -> None:
    assert reg.logger is reg.getLogger() is logging.getLogger("plugin.myPlugin")
    reg.registerCallback("s", "k", handler)
    assert reg.callbacks[0].logger is logging.getLogger("plugin.myPlugin.handler")


def test_retries_keywords_are_stored(reg: Registrar) -> None:
    reg.registerCallback("s", "k", handler, retries=3, retry_delay=2)
    assert (reg.callbacks[0].retries, reg.callbacks[0].retry_delay) == (3, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "says"), [({"retries": -1}, "retries"), ({"retry_delay": "x"}, "retry_delay")]
)
def test_bad_retry_keywords_are_refused(reg: Registrar, kwargs: Any, says: str) -> None:
    with pytest.raises(PluginError, match=says):
        reg.registerCallback("s", "k", handler, **kwargs)


@pytest.mark.parametrize(
    ("emails", "expected"),
    [
        ((True,), True),
        ((False,), False),
        ((), False),
        (("a@x",), ("a@x",)),
        (("a@x", "b@y"), ("a@x", "b@y")),
        ((["a@x", "b@y"],), ("a@x", "b@y")),
        ((("a@x",),), ("a@x",)),
    ],
)
def test_set_emails_forms(reg: Registrar, emails: tuple[Any, ...], expected: Any) -> None:
    # Given the default (the configured `to` list)
    assert reg.emails is True
    # When the plugin calls setEmails / Then True and False are not turned into recipients
    reg.setEmails(*emails)
    assert reg.getEmails() == expected
    assert reg.emails == expected


@pytest.mark.parametrize("bad", [(True, "a@x"), (3,), ([""],)])
def test_set_emails_refuses_nonsense(reg: Registrar, bad: tuple[Any, ...]) -> None:
    with pytest.raises(PluginError, match="setEmails"):
        reg.setEmails(*bad)


def test_non_callable_is_refused_naming_file_and_argument(reg: Registrar) -> None:
    with pytest.raises(PluginError) as info:
        reg.registerCallback("s", "k", "handler")  # type: ignore[arg-type]
    message = str(info.value)
    assert "myPlugin.py" in message and "callback" in message and "callable" in message


@pytest.mark.parametrize(
    "func",
    [
        lambda sg, logger, event: None,
        lambda sg, logger, event, args, extra: None,
        lambda sg, logger, event, args, *, required: None,
        lambda: None,
    ],
)
def test_callback_that_cannot_take_four_arguments_is_refused(reg: Registrar, func: Any) -> None:
    with pytest.raises(PluginError, match=r"myPlugin\.py.*<lambda>.*\(sg, logger, event, args\)"):
        reg.registerCallback("s", "k", func)


@pytest.mark.parametrize(
    "func",
    [
        lambda *a: None,
        lambda sg, logger, event, args=None, extra=1: None,
        lambda sg, *rest, **kw: None,
        print,  # a builtin: accepted whether or not it exposes a signature
    ],
)
def test_flexible_signatures_are_accepted(reg: Registrar, func: Any) -> None:
    reg.registerCallback("s", "k", func)
    assert len(reg.callbacks) == 1


@pytest.mark.parametrize(("name", "key"), [(None, "k"), ("s", None), (1, "k")])
def test_script_name_and_key_must_be_strings(reg: Registrar, name: Any, key: Any) -> None:
    with pytest.raises(PluginError, match=r"myPlugin\.py.*sgScript(Name|Key) must be a string"):
        reg.registerCallback(name, key, handler)
