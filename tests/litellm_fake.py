"""A fake LiteLLM provider: the ground truth of concurrency (no network).

Registered as the custom provider ``arbiterfake``; a deployment's
``litellm_params.model`` is ``arbiterfake/<name>``.  Each call counts itself
in flight on ``<name>`` while it runs, and records the peak.  A call's
behaviour comes from ``FakeProvider.behaviour[name]``:

* ``"ok"`` (default): answer after ``yields`` event-loop turns (no sleep);
* ``"fail"``: raise a 503 (``litellm.ServiceUnavailableError``);
* ``"gate"``: wait for ``FakeProvider.gate`` (an asyncio.Event) to be set
  (a stream: after its first chunk);
* ``"sleep"``: sleep ``delay_s`` (benchmarks only, never in tests).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse


class FakeProvider(CustomLLM):
    def __init__(self) -> None:
        super().__init__()
        self.behaviour: dict[str, str] = {}
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.yields = 3
        self.delay_s = 0.1
        self.gate: asyncio.Event | None = None
        self.started = 0
        self.started_event: asyncio.Event | None = None
        self.start_target = 0

    def reset(self) -> None:
        self.behaviour.clear()
        self.in_flight.clear()
        self.peak.clear()
        self.calls.clear()
        self.yields = 3
        self.gate = None
        self.started = 0
        self.started_event = None
        self.start_target = 0

    def _enter(self, name: str) -> None:
        self.in_flight[name] += 1
        self.calls[name] += 1
        self.peak[name] = max(self.peak[name], self.in_flight[name])
        self.started += 1
        if self.started_event is not None and self.started >= self.start_target:
            self.started_event.set()

    async def _run(self, model: str) -> None:
        name = model.split("/", 1)[-1]
        self._enter(name)
        try:
            how = self.behaviour.get(name, "ok")
            if how == "fail":
                await asyncio.sleep(0)
                raise litellm.ServiceUnavailableError(
                    message="fake outage", llm_provider="arbiterfake", model=model)
            if how == "gate":
                assert self.gate is not None
                await self.gate.wait()
            elif how == "sleep":
                await asyncio.sleep(self.delay_s)
            else:
                for _ in range(self.yields):
                    await asyncio.sleep(0)
        finally:
            self.in_flight[name] -= 1

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        await self._run(kwargs["model"])
        return litellm.ModelResponse(choices=[{"message": {"role": "assistant",
                                                           "content": "ok"}}],
                                     model=kwargs["model"])

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        name = kwargs["model"].split("/", 1)[-1]
        self._enter(name)
        try:
            if self.behaviour.get(name) == "fail":
                raise litellm.ServiceUnavailableError(
                    message="fake outage", llm_provider="arbiterfake", model=kwargs["model"])
            if self.behaviour.get(name) == "sleep":
                time.sleep(self.delay_s)
        finally:
            self.in_flight[name] -= 1
        return litellm.ModelResponse(choices=[{"message": {"role": "assistant",
                                                           "content": "ok"}}],
                                     model=kwargs["model"])

    async def astreaming(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        model = kwargs["model"]
        name = model.split("/", 1)[-1]
        self._enter(name)
        try:
            for i in range(3):
                await asyncio.sleep(0)
                if i == 1 and self.behaviour.get(name) == "gate":
                    assert self.gate is not None
                    await self.gate.wait()
                chunk: GenericStreamingChunk = {
                    "text": f"t{i}", "is_finished": i == 2, "finish_reason": "stop" if i == 2
                    else None, "usage": None, "index": 0, "tool_use": None,
                }
                yield chunk
        finally:
            self.in_flight[name] -= 1


PROVIDER = FakeProvider()
_registered = False


def register() -> FakeProvider:
    """Register the fake provider with LiteLLM once per process."""
    global _registered
    if not _registered:
        litellm.custom_provider_map = [
            *[p for p in (litellm.custom_provider_map or [])
              if p.get("provider") != "arbiterfake"],
            {"provider": "arbiterfake", "custom_handler": PROVIDER},
        ]
        _registered = True
    PROVIDER.reset()
    return PROVIDER


def model_list(n: int = 10, limit: int | None = 30, group: str = "gpt",
               prefix: str = "d", **extra: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        lp: dict[str, Any] = {"model": f"arbiterfake/{prefix}{i}", **extra}
        if limit is not None:
            lp["max_parallel_requests"] = limit
        out.append({"model_name": group, "litellm_params": lp,
                    "model_info": {"id": f"{prefix}{i}"}})
    return out
