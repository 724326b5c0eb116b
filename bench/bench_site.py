"""Benchmark the local site's hot call: a 500-row EventLogEntry read near the head of the log.

Run as ``python bench/bench_site.py``. Prints, for logs of 10k, 100k and 1M events:
- site: rows/s the site serves to one keep-alive client (request out, full body in,
  no decoding), with the exact request body shotgun_api3 sends;
- client: rows/s the real client's own decode reaches on those same bodies
  (JSON decode + datetime conversion + record parsing, no network): its ceiling;
- ratio site / client (the target is >= 3: the site is never the bottleneck);
- e2e: rows/s of real ``sg.find`` calls (network + server + client decode).
Numbers only; nothing is asserted.
"""

from __future__ import annotations

import http.client
import sys
import time
from typing import Any

import shotgun_api3

from shotgun_events.site import LocalSite

FIELDS = ["id", "event_type", "attribute_name", "meta", "entity", "user", "project",
          "session_uuid", "created_at"]
SIZES = (10_000, 100_000, 1_000_000)
PAGE = 500
ROUNDS = 40


def read_params(after: int) -> dict[str, Any]:
    """The parameters sg.find sends for the daemon's read (limit 500 -> a single page)."""
    return {
        "type": "EventLogEntry", "return_fields": FIELDS,
        "filters": {"logical_operator": "and",
                    "conditions": [{"path": "id", "relation": "greater_than",
                                    "values": [after]}]},
        "return_only": "active", "paging": {"entities_per_page": PAGE, "current_page": 1},
        "sorts": [{"field_name": "id", "direction": "asc"}],
        "api_return_image_urls": True, "return_paging_info_without_counts": False,
    }


def serve_rate(sg: shotgun_api3.Shotgun, site: LocalSite,
               starts: list[int]) -> tuple[float, list[bytes]]:
    """Rows/s for raw keep-alive POSTs of the client's own request bodies."""
    bodies = [sg._encode_payload(sg._build_payload("read", read_params(a))) for a in starts]
    headers = {"content-type": "application/json; charset=utf-8", "connection": "keep-alive"}
    conn = http.client.HTTPConnection("127.0.0.1", site.port)
    replies: list[bytes] = []
    try:
        conn.request("POST", "/api3/json", bodies[0], headers)  # warm the connection
        conn.getresponse().read()
        t0 = time.perf_counter()
        for body in bodies:
            conn.request("POST", "/api3/json", body, headers)
            replies.append(conn.getresponse().read())
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return PAGE * len(bodies) / elapsed, replies


def decode_rate(sg: shotgun_api3.Shotgun, replies: list[bytes]) -> float:
    """Rows/s for the client's own decoding of reply bodies (no network)."""
    headers = {"content-type": "application/json; charset=utf-8"}
    t0 = time.perf_counter()
    for body in replies:
        response = sg._transform_inbound(sg._decode_response(headers, body))
        records = sg._parse_records(response["results"]["entities"])
        assert len(records) == PAGE
    return PAGE * len(replies) / (time.perf_counter() - t0)


def e2e_rate(sg: shotgun_api3.Shotgun, starts: list[int]) -> float:
    """Rows/s for real sg.find calls."""
    t0 = time.perf_counter()
    for after in starts:
        rows = sg.find("EventLogEntry", [["id", "greater_than", after]], FIELDS,
                       order=[{"field_name": "id", "direction": "asc"}], limit=PAGE)
        assert len(rows) == PAGE
    return PAGE * len(starts) / (time.perf_counter() - t0)


def main() -> int:
    """Grow the log to each size and print one row of rates per size."""
    print(f"{'log size':>10} {'append s':>9} {'site rows/s':>12} {'client rows/s':>14}"
          f" {'ratio':>6} {'e2e rows/s':>11}")
    with LocalSite(seed=True) as site:
        sg = shotgun_api3.Shotgun(site.url, "shotgun_events", "local")
        site.append_events(1, entity={"type": "Shot", "id": 1, "name": "SQ010_0010"},
                           project={"type": "Project", "id": 1, "name": "Demo"})
        try:
            for size in SIZES:
                t0 = time.perf_counter()
                missing = size - site.event_count()
                if missing > 0:
                    site.append_events(
                        missing, entity={"type": "Shot", "id": 1, "name": "SQ010_0010"},
                        project={"type": "Project", "id": 1, "name": "Demo"},
                        user={"type": "HumanUser", "id": 1, "name": "Mara Okafor"})
                appended = time.perf_counter() - t0
                head = site.newest_event_id()
                # windows just behind the head, as a daemon catching up reads them
                starts = [head - PAGE - 3 * PAGE * (i % 10) - i for i in range(ROUNDS)]
                site_rate, replies = serve_rate(sg, site, starts)
                client_rate = decode_rate(sg, replies)
                e2e = e2e_rate(sg, starts)
                print(f"{size:>10,} {appended:>9.1f} {site_rate:>12,.0f} {client_rate:>14,.0f}"
                      f" {site_rate / client_rate:>6.1f} {e2e:>11,.0f}", flush=True)
        finally:
            sg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
