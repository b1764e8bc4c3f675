"""Usage-record load over real HTTP: shared by `compliance bench ingest` and the end-to-end tests."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

PROVIDERS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4"), ("google", "gemini-2.5-flash"))


def usage_records(
    count: int, *, prefix: str = "req", subjects: int = 200, text_every: int = 4
) -> list[dict[str, Any]]:
    """Realistic records: varied providers and subjects, prompt/completion text on some of them."""
    start = datetime(2026, 11, 23, tzinfo=UTC)
    records = []
    for i in range(count):
        provider, model = PROVIDERS[i % len(PROVIDERS)]
        record: dict[str, Any] = {
            "request_id": f"{prefix}-{i:08d}",
            "subject_id": f"user-{i % subjects}",
            "provider": provider,
            "model": model,
            "prompt_tokens": 200 + i % 1800,
            "completion_tokens": 50 + i % 700,
            "cost": f"{(i % 997) * 0.0000123:.8f}",
            "latency_ms": 300 + i % 4000,
            "occurred_at": (start + timedelta(milliseconds=i)).isoformat(),
        }
        if i % text_every == 0:
            record["prompt_text"] = f"Summarise ticket {i} for the weekly report in three bullet points."
            record["completion_text"] = f"- Ticket {i} was resolved.\n- Root cause: config.\n- No follow-up."
        records.append(record)
    return records


def batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ApiClient:
    """A keep-alive HTTP/1.1 client for one base URL (one per thread: http.client is not thread-safe)."""

    def __init__(self, base_url: str, key: str | None = None, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        self._key = key

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self._key is not None and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self._key}"
        self._conn.request(method, path, body=data, headers=sent)
        answer = self._conn.getresponse()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())

    def close(self) -> None:
        self._conn.close()


def post_concurrently(
    base_url: str, key: str, records: list[dict[str, Any]], *, batch_size: int = 500, concurrency: int = 4
) -> list[int]:
    """POST every batch to /v1/usage from ``concurrency`` threads; returns the status codes."""
    queue = list(batches(records, batch_size))
    lock = threading.Lock()
    statuses: list[int] = []

    def worker() -> None:
        client = ApiClient(base_url, key)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    batch = queue.pop()
                status = client.request("POST", "/v1/usage", {"records": batch}).status
                with lock:
                    statuses.append(status)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def wait_for(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def main() -> None:
    """`python -m compliance_tools.loadgen URL KEY COUNT PREFIX`: post from its own process."""
    import sys

    url, key, count, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    records = usage_records(count, prefix=prefix)
    started = time.perf_counter()
    statuses = post_concurrently(url, key, records, concurrency=concurrency)
    print(
        json.dumps(
            {
                "statuses": sorted(set(statuses)),
                "requests": len(statuses),
                "post_s": round(time.perf_counter() - started, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
