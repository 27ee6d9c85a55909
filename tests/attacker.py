"""A hostile client of the app, as an attacker would write one: raw `/gradio_api/queue/join` calls with
a session hash of its choice and any `fn_index` (a private event included), results read from
`/gradio_api/queue/data`. Used by tests/robustness/test_attacks.py and benchmarks/load.py."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx


def fn_index(demo, name: str) -> int:
    """The event index of the handler named `name`, as anyone can read it from `/config`."""
    found = [i for i, f in demo.fns.items() if getattr(f.fn, "__name__", "") == name]
    assert found, f"no event runs {name}"
    return found[0]


def api_index(demo, api_name: str) -> int:
    found = [i for i, f in demo.fns.items() if f.api_name == api_name]
    assert found, f"no event is named {api_name}"
    return found[0]


class Attacker:
    def __init__(self, url: str, session: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.session = session or secrets.token_hex(8)
        self.http = httpx.Client(timeout=60, headers=headers or {})

    def join(self, index: int, data: list[Any], session: str | None = None) -> httpx.Response:
        """Queue one event and read nothing back."""
        body = {"data": data, "fn_index": index, "session_hash": session or self.session, "event_data": None,
                "trigger_id": None}
        return self.http.post(f"{self.url}gradio_api/queue/join", json=body)

    def call(self, index: int, data: list[Any]) -> dict:
        """Queue one event in this session and wait for its outcome: the `process_completed` message."""
        joined = self.join(index, data)
        joined.raise_for_status()
        event = joined.json()["event_id"]
        with self.http.stream("GET", f"{self.url}gradio_api/queue/data",
                              params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event and message.get("msg") == "process_completed":
                    return message
        raise AssertionError("the stream ended before the event completed")

    def output(self, index: int, data: list[Any]) -> list[Any]:
        message = self.call(index, data)
        assert message["success"], message
        return message["output"]["data"]

    def get(self, path: str) -> httpx.Response:
        return self.http.get(f"{self.url}{path.lstrip('/')}")

    def close(self) -> None:
        self.http.close()
