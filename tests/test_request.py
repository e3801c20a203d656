"""AllocationRequest, the compiled type: against a pure-Python model of its
rules (what each argument accepts, what it is stored as, which error names
which argument), plus immutability, equality, hashing, pickling and repr."""

from __future__ import annotations

import copy
import math
import numbers
import pickle
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbiter_core import (
    AllocationRequest,
    LoadBalancer,
    ManualClock,
    ResourceAllocator,
    ResourceMonitor,
    ResourceRequirements,
    TaskPriority,
)
from arbiter_core._request import MAX_PREFIX_BLOCKS

P = TaskPriority
_PRIOS = {int(p): p for p in TaskPriority}
_MISSING = object()


def model(request_id: Any, task_id: Any, priority: Any = P.MEDIUM, timeout_s: Any = 30.0,
          cost: Any = 1.0, tenant: Any = "default", affinity_key: Any = None,
          prefix: Any = None) -> tuple[type[Exception], str] | dict[str, Any]:
    """The rules, written plainly: the stored fields, or (error type, the
    argument its message names)."""

    def name(v: Any, arg: str, limit: int) -> tuple[type[Exception], str] | None:
        if not isinstance(v, str):
            return TypeError, arg
        if not 0 < len(v) <= limit:
            return ValueError, arg
        return None

    def positive(v: Any, arg: str) -> tuple[type[Exception], str] | None:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return TypeError, arg
        if not (math.isfinite(v) and v > 0):
            return ValueError, arg
        return None

    for err in (name(request_id, "request_id", 1024), name(task_id, "task_id", 1024)):
        if err:
            return err
    if isinstance(priority, bool) or not isinstance(priority, numbers.Integral):
        return TypeError, "priority"
    if not 0 <= priority <= 100:
        return ValueError, "priority"
    for err in (positive(timeout_s, "timeout_s"), positive(cost, "cost"),
                name(tenant, "tenant", 256),
                None if affinity_key is None else name(affinity_key, "affinity_key", 1024)):
        if err:
            return err
    blocks = None
    if prefix is not None:
        if isinstance(prefix, (str, bytes)):
            return TypeError, "prefix"
        if len(prefix) > MAX_PREFIX_BLOCKS:
            return ValueError, "prefix"
        for b in prefix:
            if isinstance(b, bool) or not isinstance(b, numbers.Integral):
                return TypeError, "prefix"
            if not 0 <= b < 2**64:
                return ValueError, "prefix"
        blocks = tuple(int(b) for b in prefix) or None
    return {"request_id": request_id, "task_id": task_id,
            "priority": _PRIOS.get(int(priority), int(priority)),
            "timeout_s": float(timeout_s), "cost": float(cost), "tenant": tenant,
            "affinity_key": affinity_key, "prefix": blocks}


names = st.one_of(st.text(max_size=3), st.integers(0, 3), st.none(),
                  st.sampled_from(["x" * 1024, "x" * 1025, "y" * 256, "y" * 257]))
numbers_ = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 10**6),
                     st.booleans(), st.text(max_size=1))
blocks = st.one_of(st.integers(0, 2**64 - 1), st.integers(-2, 2**64 + 1), st.booleans(),
                   st.floats(0, 10))


@settings(max_examples=400, deadline=None)
@given(request_id=names, task_id=names,
       priority=st.one_of(st.sampled_from(list(TaskPriority)), st.integers(-5, 105),
                          st.floats(0, 100), st.booleans()),
       timeout_s=numbers_, cost=numbers_, tenant=st.one_of(names, st.just("default")),
       affinity_key=st.one_of(st.none(), names),
       prefix=st.one_of(st.none(), st.lists(blocks, max_size=6),
                        st.lists(st.integers(0, 2**64 - 1), max_size=6).map(tuple),
                        st.text(max_size=2)))
def test_the_type_follows_the_model(request_id, task_id, priority, timeout_s, cost, tenant,
                                    affinity_key, prefix):
    kw = {"priority": priority, "timeout_s": timeout_s, "cost": cost, "tenant": tenant,
          "affinity_key": affinity_key, "prefix": prefix}
    want = model(request_id, task_id, **kw)
    if isinstance(want, tuple):
        err, arg = want
        with pytest.raises(err, match=arg):
            AllocationRequest(request_id, task_id, **kw)
        return
    r = AllocationRequest(request_id, task_id, **kw)
    got = {k: getattr(r, k) for k in want if k != "prefix"}
    got["prefix"] = None if r.prefix is None else tuple(int(b) for b in r.prefix)
    assert got == want
    assert type(r.priority) is type(want["priority"])
    assert type(r.timeout_s) is float and type(r.cost) is float
    # a copy that went through pickle is the same request, with the same hash
    again = pickle.loads(pickle.dumps(r))
    assert again == r and hash(again) == hash(r)
    assert not again.__ne__(r)
    assert copy.copy(r) == r


def test_defaults_and_the_common_request():
    r = AllocationRequest("r", "t")
    assert (r.priority, r.timeout_s, r.required_resources, r.metadata, r.requested_at,
            r.movable, r.exclude, r.tenant, r.cost, r.affinity_key, r.prefix,
            r.prefix_bytes) == (P.MEDIUM, 30.0, None, None, None, True, None, "default", 1.0,
                                None, None, None)


def test_conversions_of_the_other_fields():
    r = AllocationRequest("r", "t", required_resources={"cpu_percent": 20.0},
                          metadata={"k": 1}, requested_at=5, exclude=["a", "b", "a"],
                          movable=False)
    assert r.required_resources == ResourceRequirements(cpu_percent=20.0)
    assert isinstance(r.metadata, MappingProxyType) and dict(r.metadata) == {"k": 1}
    assert r.requested_at == 5 and r.exclude == frozenset({"a", "b"})
    assert AllocationRequest("r", "t", exclude=[]).exclude is None
    with pytest.raises(TypeError, match="required_resources"):
        AllocationRequest("r", "t", required_resources=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exclude"):
        AllocationRequest("r", "t", exclude="ab")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exclude"):
        AllocationRequest("r", "t", exclude=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="movable"):
        AllocationRequest("r", "t", movable=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="requested_at"):
        AllocationRequest("r", "t", requested_at="now")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="requested_at"):
        AllocationRequest("r", "t", requested_at=math.inf)


def test_prefix_is_packed_once_and_read_only():
    hashes = [0, 1, 2**63, 2**64 - 1]
    r = AllocationRequest("r", "t", prefix=hashes)
    assert r.prefix_bytes == np.array(hashes, dtype=np.uint64).tobytes()
    a = r.prefix
    assert a.dtype == np.uint64 and a.tolist() == hashes and not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 7
    # numpy input, generators and numpy integers are accepted; empty is none
    assert AllocationRequest("r", "t", prefix=np.array(hashes, dtype=np.uint64)) == r
    assert AllocationRequest("r", "t", prefix=(h for h in hashes)) == r
    assert AllocationRequest("r", "t", prefix=[np.uint64(h) for h in hashes]) == r
    assert AllocationRequest("r", "t", prefix=np.arange(3)).prefix.tolist() == [0, 1, 2]
    assert AllocationRequest("r", "t", prefix=[]).prefix is None
    assert AllocationRequest("r", "t", prefix=np.empty(0, np.int64)).prefix is None
    big = AllocationRequest("r", "t", prefix=range(MAX_PREFIX_BLOCKS))
    assert len(big.prefix) == MAX_PREFIX_BLOCKS
    for bad, err in [(np.array([-1]), ValueError), (np.array([1.0]), TypeError),
                     (np.zeros((2, 2), np.uint64), ValueError), (b"\x00" * 8, TypeError),
                     (range(MAX_PREFIX_BLOCKS + 1), ValueError),
                     (np.zeros(MAX_PREFIX_BLOCKS + 1, np.uint64), ValueError), (5, TypeError)]:
        with pytest.raises(err, match="prefix"):
            AllocationRequest("r", "t", prefix=bad)


def test_immutable():
    r = AllocationRequest("r", "t", prefix=[1])
    for field in ("request_id", "priority", "cost", "affinity_key", "prefix", "prefix_bytes"):
        with pytest.raises(AttributeError):
            setattr(r, field, None)
    with pytest.raises(AttributeError):
        r.other = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="immutable"):
        r.__init__("s", "t")  # type: ignore[misc]
    assert r.request_id == "r"


def test_equality_hash_and_repr():
    a = AllocationRequest("r", "t", priority=75, prefix=[3, 4], affinity_key="k", cost=2)
    b = AllocationRequest("r", "t", priority=P.HIGH, prefix=(3, 4), affinity_key="k", cost=2.0)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != AllocationRequest("r", "t", priority=75, prefix=[3, 5], affinity_key="k",
                                  cost=2)
    assert a != AllocationRequest("r", "t", priority=75, prefix=[3, 4], affinity_key="k")
    assert a.__eq__(("r", "t")) is NotImplemented
    with pytest.raises(TypeError):
        hash(AllocationRequest("r", "t", metadata={"k": 1}))     # as the dataclass did
    plain = AllocationRequest("r", "t", timeout_s=5.0, tenant="acme")
    assert repr(plain) == (
        "AllocationRequest(request_id='r', task_id='t', priority=<TaskPriority.MEDIUM: 50>, "
        "timeout_s=5.0, required_resources=None, metadata=None, requested_at=None, "
        "movable=True, exclude=None, tenant='acme', cost=1.0, affinity_key=None, prefix=None)")
    meta = AllocationRequest("r", "t", metadata={"k": [1]})
    assert pickle.loads(pickle.dumps(meta)) == meta


def test_a_subclass_is_accepted_by_the_allocator():
    class Tagged(AllocationRequest):
        pass

    mon = ResourceMonitor(clock=ManualClock())
    mon.register_agent("a0", max_tasks=1)
    alloc = ResourceAllocator(LoadBalancer(mon, seed=1))
    res = alloc.allocate(Tagged("r", "t"))
    assert res.status.value == "allocated"
    assert Tagged("r", "t") != AllocationRequest("r", "t")      # different types
