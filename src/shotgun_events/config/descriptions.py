"""What each config key means: the words of the configuration reference, one entry per key.

The keys and their defaults are not here: they live in the defaults table
(model.py) and ``PLUGIN_KEYS`` (plugin_sections.py). reference.py checks that
this table describes exactly those keys and renders the page from both.
"""

from __future__ import annotations

from dataclasses import dataclass

from shotgun_events.config.plugin_sections import SECTION_PREFIX
from shotgun_events.config.table import Key

#: How the reference names every ``[plugin:NAME]`` section.
PLUGIN_SECTION = f"{SECTION_PREFIX}NAME"


@dataclass(frozen=True)
class KeyDoc:
    """What the reference says about one key."""

    text: str
    #: What the default means when the table holds none to show: an empty value (``""``),
    #: or a ``[plugin:NAME]`` key, which falls back to the plugin's code or the daemon's value.
    shown_default: str | None = None


#: The sections in page order: name, and what the section is for (shown above its table).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("daemon", "The daemon itself: its files, how it reads the event log, and how plugins run."),
    ("shotgun", "The site and the daemon's own script credentials."),
    ("plugins", "Where plugins are found and how they are watched and reloaded."),
    (
        PLUGIN_SECTION,
        "One section per plugin that needs settings of its own (**new**). NAME is the "
        'plugin\'s file name without `.py`. A key left out means "not set here": the '
        "plugin's request in code (a `Registrar` method) or the daemon's default applies; "
        "the config wins over the code. A section naming no loaded plugin is warned about "
        "once, after the first scan of the plugin folders.",
    ),
    (
        "emails",
        "Error emails. A whole `[emails]` section is ignored until `enabled = True`; a "
        "filled-in section without it is reported as a warning at start.",
    ),
    (
        "http",
        "Metrics, health probes and the status page (**new**, off by default); see "
        "[Observing](observing.md).",
    ),
    (
        "webhooks",
        "The receiver of the site's webhook deliveries (**new**, off by default); see "
        "[Polling and webhooks](webhooks.md).",
    ),
    (
        "celery",
        "Plugin callbacks on Celery workers (**new**); read only when some plugin runs on "
        "Celery or the section is present. See [Workers on other machines](celery.md).",
    ),
)

#: Keys the original shotgunEvents reads; every other key exists only here (marked **new**).
ORIGINAL_KEYS: frozenset[Key] = frozenset(
    (section, key)
    for section, keys in (
        (
            "daemon",
            "pidFile eventIdFile logMode logPath logFile logging timing_log conn_retry_sleep "
            "max_conn_retries fetch_interval max_event_batch_size",
        ),
        ("shotgun", "server name key proxy_server use_session_uuid"),
        ("plugins", "paths"),
        ("emails", "enabled server port useTLS username password from to subject"),
    )
    for key in keys.split()
)

_RETRIES = "see [Failures, retries and dead letters](plugins.md#failures-retries-and-dead-letters)"

#: One description per key, in page order within each section.
DESCRIPTIONS: dict[Key, KeyDoc] = {
    # [daemon]
    ("daemon", "pidFile"): KeyDoc(
        "File holding the daemon's process id while it runs (`start`, `stop`, `status`). "
        "Its folder must exist."
    ),
    ("daemon", "eventIdFile"): KeyDoc(
        "State file: per plugin, the last processed event id and the ids still missing, plus "
        "disables, dead letters and the audit list. Written as JSON, atomically, with a "
        "`<eventIdFile>.journal` next to it, and locked (`<eventIdFile>.lock`) so that one "
        "daemon at a time uses it; an original pickle file here is imported once."
    ),
    ("daemon", "logMode"): KeyDoc(
        "`0`: every message in the main log file; `1`: main file for the engine plus one "
        "`plugin.<name>` file per plugin."
    ),
    ("daemon", "logPath"): KeyDoc(
        "Folder for the log files, created if missing. Without it, `logFile` is a path of its own."
    ),
    ("daemon", "logFile"): KeyDoc("Main log file name. Logs rotate at midnight, 10 files kept."),
    ("daemon", "logging"): KeyDoc(
        "Log level of the engine and starting level of plugins: 10 debug, 20 info, 30 warning, "
        "40 error, 50 critical. Level names (`DEBUG`) are accepted too (**new**)."
    ),
    ("daemon", "timing_log"): KeyDoc(
        "`on`: one line per callback call in `<logFile>.timing` (event id, created_at, "
        "callback, start, end, duration, error, delay since the event was created)."
    ),
    ("daemon", "conn_retry_sleep"): KeyDoc(
        "Seconds to wait after `max_conn_retries` failed attempts to reach the site."
    ),
    ("daemon", "max_conn_retries"): KeyDoc(
        "Attempts in a row before the failure is logged as an ERROR (emailed when enabled). "
        "At least 1."
    ),
    ("daemon", "fetch_interval"): KeyDoc(
        "Seconds to wait after a fetch that returned less than a full batch."
    ),
    ("daemon", "active_fetch_interval"): KeyDoc(
        "Adaptive polling: seconds to wait after a fetch that returned events, since more are "
        "likely coming; each empty fetch doubles the wait back up to `fetch_interval`, so an "
        "idle daemon reads exactly as often as before. At or above `fetch_interval`: no "
        "adapting. More than 0."
    ),
    ("daemon", "max_event_batch_size"): KeyDoc("Events per fetch, 1 to 5000."),
    ("daemon", "backlog_timeout"): KeyDoc(
        "Seconds a missing event id (its transaction not yet committed) is waited for, in site "
        "time; hardcoded to 5 minutes in the original."
    ),
    ("daemon", "backlog_poll_interval"): KeyDoc(
        "Seconds between two look-ups of the missing ids, by id. More than 0."
    ),
    ("daemon", "start_from_id"): KeyDoc(
        "Event id where plugins without a saved position start (at every start while it is "
        "set; same as `--from-id`). Empty: the newest event, as the original."
    ),
    ("daemon", "dispatch"): KeyDoc(
        "Which thread runs each plugin. `auto`: plugins share one thread (the shared lane) "
        "while their callbacks are quick, at serial mode's cost; a plugin whose slow callbacks "
        "hold the others up gets a thread of its own (at once, even in the middle of a long "
        "callback), catches up from its own position and comes back once caught up and idle "
        "for a while, so a slow plugin holds the others for a few tens of milliseconds at "
        "most; `parallel`: every plugin on its own thread from the start, each in event order; "
        "`serial`: one event through every plugin at a time, as the original. (`celery` is "
        "still read, as `executor = celery`, with a deprecation warning.)"
    ),
    ("daemon", "executor"): KeyDoc(
        "Where plugins' events run unless their `[plugin:NAME]` section says otherwise: "
        "`local` (in the daemon: in event order, or on the plugin's own pool with "
        "`concurrency` > 1) or `celery` (on Celery workers, one task in flight per `order_by` "
        "key; see [Workers on other machines](celery.md))."
    ),
    ("daemon", "max_calls_per_second"): KeyDoc(
        "Ceiling on each plugin's site calls: API calls per second one plugin's callbacks may "
        "send through their `sg` (a `find`, an `update`, a whole `batch`: one each); a quiet "
        "plugin may send one second's worth at once. Calls above it wait their turn (other "
        "plugins are not held), counted in `status` and "
        "`shotgun_events_plugin_site_call_wait_seconds_total`. Calls outside callbacks and the "
        "daemon's own reads are not limited; on Celery workers it holds per worker process. "
        "Decimals allowed; `0`: no ceiling. A `[plugin:NAME]` section may set its own."
    ),
    ("daemon", "stop_timeout"): KeyDoc(
        "Seconds the daemon gives running callbacks to finish when it stops, and how long "
        "`stop` and `restart` wait for it (their `--timeout` default). More than 0."
    ),
    ("daemon", "callback_retries"): KeyDoc(
        "Extra attempts for a failing callback before `stopOnError` applies (0 to 100); a "
        f"plugin may pass `retries=N` to `registerCallback`; {_RETRIES}."
    ),
    ("daemon", "callback_retry_delay"): KeyDoc(
        "Seconds before the first retry, doubling for each next one; a plugin may pass "
        "`retry_delay=S`."
    ),
    ("daemon", "callback_retry_max_delay"): KeyDoc("Upper bound of the wait between retries."),
    ("daemon", "disabled_cooldown"): KeyDoc(
        "Seconds after which a plugin switched off by a failing callback is switched on again, "
        "resuming at the failed event; `0` keeps it off until its file changes (or `enable`)."
    ),
    ("daemon", "callback_timeout"): KeyDoc(
        "Seconds after which a callback still running on one event is logged as an ERROR with "
        "its stack (once per stuck event); it is not interrupted. `0`: no limit."
    ),
    ("daemon", "control_socket"): KeyDoc(
        "Unix socket through which [operator commands](operations.md) reach the running "
        "daemon. Created with mode 0600; only the daemon's user and root may use it. Keep it "
        "in a folder the daemon's user owns; at most 107 bytes.",
        shown_default="`<pidFile>.sock`",
    ),
    ("daemon", "prefilter"): KeyDoc(
        "Ask the site only for the event types some active callback can match, when every "
        'active callback has a finite `matchEvents` (no `"*"` key, not `None`). Other ids '
        "look like gaps and are settled at the next backlog poll (read by id without the "
        "filter), so nothing is missed."
    ),
    ("daemon", "max_connections_per_script"): KeyDoc(
        "Most HTTP connections the plugins' `sg` objects of one script credential keep open at "
        "once (a pool per credential: each call borrows one, a new one opens only when all are "
        "busy, idle ones close after 60 s, a failed one is dropped). Calls beyond it wait for "
        "a connection. 1 to 256."
    ),
    ("daemon", "read_ahead"): KeyDoc(
        "During catch-up (the newest id far ahead) from a site that makes reads wait (an "
        "answer takes longer to arrive than to decode), how many consecutive id windows of "
        "`max_event_batch_size` the engine reads from the site at once, handed on in id "
        "order; once caught up, or from a site that answers at once, one read at a time. "
        "1 turns read-ahead off. 1 to 32."
    ),
    ("daemon", "state_fsync"): KeyDoc(
        "When state writes are forced to disk: `always` (every event), `interval` (at most "
        "about once a second), or `never` (left to the operating system). Only matters for "
        "power cuts; `kill -9` loses nothing either way."
    ),
    ("daemon", "strict_permissions"): KeyDoc(
        "`true`: refuse to start on a permission warning (config or plugins writable by "
        "others, secrets readable by others) instead of logging it."
    ),
    # [shotgun]
    ("shotgun", "server"): KeyDoc("Site URL, `http://` or `https://`."),
    ("shotgun", "name"): KeyDoc("Script name of the daemon's own script."),
    ("shotgun", "key"): KeyDoc("Application key of that script. Never logged."),
    ("shotgun", "proxy_server"): KeyDoc(
        "Proxy for every connection, `host:port` or `user:password@host:port`. Its "
        "credentials are never logged."
    ),
    ("shotgun", "use_session_uuid"): KeyDoc(
        "Set each event's `session_uuid` on the connection before calling a plugin, so the "
        "browser that caused the event shows the plugin's changes live."
    ),
    ("shotgun", "timeout_secs"): KeyDoc(
        "Seconds before a request to the site is abandoned and retried. More than 0 (no "
        "request may hang forever)."
    ),
    ("shotgun", "ca_certs"): KeyDoc(
        "CA bundle file to verify the site's certificate. Empty: the bundle shipped with "
        "`shotgun_api3`."
    ),
    # [plugins]
    ("plugins", "paths"): KeyDoc(
        "Comma-separated plugin folders, processed in this order. A folder listed twice is "
        "used once."
    ),
    ("plugins", "watch"): KeyDoc(
        "How plugin files are watched: `auto` (inotify where available, else polling), "
        "`polling` (network file systems), `off` (checked once per poll of the site)."
    ),
    ("plugins", "helper_paths"): KeyDoc(
        "Comma-separated folders of helper modules plugins import; a change reloads every "
        "plugin that imports the module. Helpers inside plugin folders (names starting with "
        "`_`) are tracked anyway. See [Helper modules](migrating.md#helper-modules)."
    ),
    ("plugins", "reload_debounce"): KeyDoc(
        "Seconds a changed file must be quiet before it is imported, so a half-written file "
        "is never loaded."
    ),
    ("plugins", "poll_interval"): KeyDoc(
        "Seconds between checks when `watch = polling` (and between a Celery worker's rescans "
        "of its plugin folders). More than 0."
    ),
    ("plugins", "config_dir_on_path"): KeyDoc(
        "Put the config file's folder on the plugins' import path, after the plugin folders "
        "and `helper_paths`, so helper modules kept beside the config (the original's `src/` "
        "folder) are found, and reload their plugins like `helper_paths` ones. `False`: a "
        "plugin importing such a module fails with `ModuleNotFoundError` unless its folder is "
        "in `helper_paths`."
    ),
    # [plugin:NAME]
    (PLUGIN_SECTION, "projects"): KeyDoc(
        "Comma-separated project ids or names, e.g. `122, Big Show`. Events of other projects "
        "and events without a project are not delivered; the plugin's position moves past "
        "them and `status` counts them (`other_projects`). Names are resolved to ids once, by "
        "the daemon's script; an unknown name is logged as an error and matches nothing. In "
        'code: `reg.setProjects(122, "Big Show")`.',
        shown_default="every project",
    ),
    (PLUGIN_SECTION, "ignore_own_events"): KeyDoc(
        "Skip events whose `user` is the ApiUser of the script name the callback registered "
        "with (counted as `own_events`); see [Scope and loop "
        "protection](plugins.md#scope-and-loop-protection). In code: "
        "`reg.setIgnoreOwnEvents(True)`.",
        shown_default="`False` (or `reg.setIgnoreOwnEvents`)",
    ),
    (PLUGIN_SECTION, "concurrency"): KeyDoc(
        "Events of the plugin handled at once, 1 to 256, one at a time per ordering key; "
        "overrides the plugin's `setConcurrency`. `1`: strict id order. See [Concurrency "
        "inside a plugin](plugins.md#concurrency-inside-a-plugin).",
        shown_default="`1` (or `reg.setConcurrency`)",
    ),
    (PLUGIN_SECTION, "order_by"): KeyDoc(
        "Ordering key when `concurrency` > 1 or on Celery: `entity` (type + id), `project`, "
        "`none` (no order) or a dotted field of the event (`meta.entity_id`).",
        shown_default="`entity` (or `reg.setConcurrency`)",
    ),
    (PLUGIN_SECTION, "executor"): KeyDoc(
        "Where the plugin's callbacks run: `local` (in the daemon) or `celery` (on Celery "
        "workers, one task in flight per `order_by` key). Overrides `[daemon] executor` for "
        "this plugin.",
        shown_default="`[daemon] executor`",
    ),
    (PLUGIN_SECTION, "max_calls_per_second"): KeyDoc(
        "The plugin's own ceiling on site calls per second (see `[daemon] "
        "max_calls_per_second`); `0` exempts it from a daemon-wide one.",
        shown_default="`[daemon] max_calls_per_second`",
    ),
    # [emails]
    ("emails", "enabled"): KeyDoc(
        "Email log records at ERROR and above. When true, `server`, `from` and `to` are "
        "required. The whole `[emails]` section is ignored while this is false."
    ),
    ("emails", "server"): KeyDoc("SMTP host."),
    ("emails", "port"): KeyDoc("SMTP port; `465` by default with `useSSL`."),
    ("emails", "useTLS"): KeyDoc("Upgrade the connection with STARTTLS (usually port 587)."),
    ("emails", "useSSL"): KeyDoc(
        "Connect over TLS from the start, SMTPS (usually port 465). Not together with `useTLS`."
    ),
    ("emails", "username"): KeyDoc(
        "SMTP user, when the server requires a login; e.g. `%(SG_ED_EMAIL_USERNAME)s`."
    ),
    ("emails", "password"): KeyDoc("SMTP password; e.g. `%(SG_ED_EMAIL_PASSWORD)s`. Never logged."),
    ("emails", "from"): KeyDoc("Sender address."),
    ("emails", "to"): KeyDoc("Comma-separated recipients (what `reg.setEmails(True)` means)."),
    ("emails", "subject"): KeyDoc("Subject prefix, for mail filters."),
    ("emails", "digest_interval"): KeyDoc(
        "At most one email per plugin per this many seconds; the errors in between go in the "
        "next one, as a digest."
    ),
    ("emails", "timeout"): KeyDoc(
        "Seconds before an SMTP connection attempt is abandoned. More than 0."
    ),
    ("emails", "ca_certs"): KeyDoc(
        "CA bundle trusted for STARTTLS/SMTPS (a private mail CA). Empty: the system's CAs."
    ),
    # [http]
    ("http", "listen"): KeyDoc(
        "`HOST:PORT` of the metrics, health probes and status page; empty: off. A loopback "
        "address (`127.0.0.1:9464`) is always accepted; a wildcard (`0.0.0.0`, `::`, empty "
        "host) only with a `token`; any other explicit address logs a warning unless a "
        "`token` is set."
    ),
    ("http", "token"): KeyDoc(
        "When set (at least 16 characters), every request must carry `Authorization: Bearer "
        "<token>`; others get 401. Never logged."
    ),
    ("http", "live_timeout"): KeyDoc(
        "Seconds without a turn of the engine loop after which `/livez` answers 503. Empty: "
        "`WatchdogSec` under a systemd watchdog, else `max(60, 2 x (fetch_interval + "
        "timeout_secs))`.",
        shown_default="derived",
    ),
    # [webhooks]
    ("webhooks", "listen"): KeyDoc(
        "`HOST:PORT` (or `[IPv6]:PORT`) where the webhook receiver listens, e.g. "
        "`127.0.0.1:8090` behind a TLS reverse proxy. Empty: no receiver, and the rest of "
        "`[webhooks]` is ignored."
    ),
    ("webhooks", "secret"): KeyDoc(
        "The webhook's secret token, e.g. `%(SG_ED_WEBHOOK_SECRET)s`; every delivery's "
        "`X-SG-SIGNATURE` is checked against it. Required when `listen` is set. Never logged."
    ),
    ("webhooks", "path"): KeyDoc("URL path the deliveries are POSTed to (other paths get 404)."),
    # [celery]
    ("celery", "broker_url"): KeyDoc(
        "Redis the daemon sends plugin tasks to (`redis://`, or `rediss://` for TLS; add "
        "`?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem` for a private CA). Password "
        "through the environment: `redis://:%(REDIS_PASSWORD)s@host:6379/0`. A secret: never "
        "logged or shown."
    ),
    ("celery", "result_backend"): KeyDoc(
        "Redis where workers put results (and their done records); empty means `broker_url`. "
        "A secret like `broker_url`.",
        shown_default="the broker",
    ),
    ("celery", "queue_prefix"): KeyDoc(
        "Each plugin's queue is `<prefix>.<plugin>`; our Redis keys start with `<prefix>:`. "
        "Letters, digits, `_`, `-`, `.`."
    ),
    ("celery", "task_timeout"): KeyDoc(
        "Seconds before a task whose result has not come back is sent again (workers skip "
        "events they already did). Longer than your slowest callback."
    ),
    ("celery", "task_batch"): KeyDoc(
        "Most consecutive events of one ordering key carried by one task (fewer round trips "
        "on catch-up). 1 to 1000."
    ),
    ("celery", "done_ttl"): KeyDoc(
        "Seconds a worker remembers an event it completed, so a re-sent task does not run the "
        "callback twice."
    ),
}
