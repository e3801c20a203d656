# AllocationRequest as a compiled type.  It was a frozen dataclass whose
# constructor set every field through object.__setattr__ (about 1.5 us, more
# than the allocate + release it feeds); here the fields are C slots, the
# common request is validated in a few C comparisons, and the allocation core
# reads priority, resources and cost as C values (_request.pxd).  Unusual
# values (a plain int priority, a resources mapping, metadata, exclusions)
# take the Python validators, so the messages are the package's usual ones.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsUnsignedLongLong
from libc.math cimport isfinite
from libc.stdint cimport uint64_t

from collections.abc import Iterable, Mapping
from numbers import Integral
from types import MappingProxyType

import numpy as np

from ._validate import MAX_ID_LENGTH as _MAX_ID, check_int, check_name, check_number, \
    check_positive
from .types import TaskPriority

__all__ = ["AllocationRequest", "MAX_PREFIX_BLOCKS"]

#: Most block hashes a request's ``prefix`` may carry (512 KiB of hashes).
MAX_PREFIX_BLOCKS = 65536

cdef Py_ssize_t _MAX_ID_LEN = _MAX_ID
cdef Py_ssize_t _MAX_TENANT = 256      # MAX_NAME_LENGTH (tenants.MAX_TENANT_NAME)
cdef object _TaskPriority = TaskPriority
cdef dict _PRIORITIES = {int(p): p for p in TaskPriority}
cdef object _MEDIUM = TaskPriority.MEDIUM
cdef object _U64 = np.dtype(np.uint64)
cdef object _requirements = None       # ResourceRequirements, imported on first use


cdef class AllocationRequest:
    """AllocationRequest(request_id, task_id, priority=TaskPriority.MEDIUM, timeout_s=30.0, required_resources=None, metadata=None, requested_at=None, movable=True, exclude=None, tenant='default', cost=1.0, affinity_key=None, prefix=None)
    --

    A request for one task slot (immutable, hashable when its metadata is
    None, comparable, picklable).

    Parameters
    ----------
    request_id : str
        Unique among live (queued or allocated) requests; 1 to 1024
        characters (``MAX_ID_LENGTH``).
    task_id : str
        1 to 1024 characters.
    priority : TaskPriority or int
        0-100; CRITICAL > HIGH > MEDIUM > LOW.  A value equal to a
        :class:`~arbiter_core.TaskPriority` member is stored as that member.
    timeout_s : float
        How long it may wait in the queue (> 0); the deadline is
        ``requested_at + timeout_s``.  Stored as a float.
    required_resources : ResourceRequirements or mapping, optional
        ``cpu_percent``, ``memory_mb``, ``network_mbps``.
    metadata : mapping, optional
        Kept as a read-only copy.
    requested_at : float, optional
        Submission time; ``None`` = the allocator's clock at submission.
    movable : bool
        ``False``: failover never moves this request (a running call that
        cannot move): its slot on the failed agent is freed and it stays
        ALLOCATED, detached, until released; its outcome is then charged to
        no agent.  Default ``True``.
    exclude : iterable of str, optional
        Agents this request must not get (a retry after a failure); kept as
        a frozenset.  Unknown ids are allowed (they exclude nothing).
    tenant : str
        Who the request is for (default ``"default"``; 1 to 256 characters):
        its queue share, caps and rate limit (see
        :class:`~arbiter_core.TenantPolicy`).
    cost : float
        What serving it costs (default 1; > 0, finite), e.g. its prompt +
        output tokens.  With ``ResourceManagerConfig(fair_share="cost")``
        a tenant's fair share is charged by cost rather than by requests.
    affinity_key : str, optional
        A cache-affinity key (1 to 1024 characters): requests with the same
        key prefer the same agent.  Carried for the selection scorers; the
        allocation core does not read it yet.
    prefix : sequence of int, optional
        The request's prompt prefix as block hashes, each an integer in
        ``[0, 2**64)``, at most :data:`MAX_PREFIX_BLOCKS` blocks; an empty
        sequence means none (``None``).  Stored once as packed native
        ``uint64`` words (``prefix_bytes``) that C code reads without a
        Python call per block; the ``prefix`` attribute is a read-only
        ``numpy.uint64`` array over them.  Not read by the allocation core
        yet.

    Notes
    -----
    Attributes cannot be set (``AttributeError``).  Two requests are equal
    when they are of the same type and every field is equal; the hash is
    that of the fields, so a request with metadata is not hashable (its
    read-only mapping is not), exactly as for the frozen dataclass it
    replaces.
    """

    def __init__(self, request_id, task_id, priority=_MEDIUM, timeout_s=30.0,
                 required_resources=None, metadata=None, requested_at=None, movable=True,
                 exclude=None, tenant="default", cost=1.0, affinity_key=None, prefix=None):
        if self._ready:
            raise AttributeError("AllocationRequest is immutable")
        # the common request: every check is a C comparison
        if type(request_id) is not str or not 0 < len(<str>request_id) <= _MAX_ID_LEN:
            check_name(request_id, "request_id", _MAX_ID_LEN)
        if type(task_id) is not str or not 0 < len(<str>task_id) <= _MAX_ID_LEN:
            check_name(task_id, "task_id", _MAX_ID_LEN)
        self.request_id = request_id
        self.task_id = task_id
        if type(priority) is not _TaskPriority:
            p = check_int(priority, "priority", 0, 100)
            priority = _PRIORITIES.get(p, p)
        self.priority = priority
        self.c_prio = priority
        if type(timeout_s) is float and 0.0 < <double>timeout_s and isfinite(<double>timeout_s):
            self.timeout_s = timeout_s
        else:
            self.timeout_s = check_positive(timeout_s, "timeout_s")
        if type(cost) is float and 0.0 < <double>cost and isfinite(<double>cost):
            self.cost = cost
        else:
            self.cost = check_positive(cost, "cost")
        if type(tenant) is not str or not 0 < len(<str>tenant) <= _MAX_TENANT:
            check_name(tenant, "tenant", _MAX_TENANT)
        self.tenant = tenant
        if movable is not True and movable is not False:
            raise TypeError(f"movable must be a bool, got {type(movable).__name__}")
        self.movable = movable
        if required_resources is not None:
            self._set_resources(required_resources)
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
            self.metadata = MappingProxyType(dict(metadata))
        if requested_at is not None:
            check_number(requested_at, "requested_at")
            self.requested_at = requested_at
        if exclude is not None:
            self.exclude = _exclusions(exclude)
        if affinity_key is not None:
            self.affinity_key = check_name(affinity_key, "affinity_key", _MAX_ID_LEN)
        if prefix is not None:
            self.prefix_bytes = _pack_prefix(prefix)
        self._ready = True

    cdef int _set_resources(self, object res) except -1:
        global _requirements
        if _requirements is None:
            from .resources.records import ResourceRequirements
            _requirements = ResourceRequirements
        if isinstance(res, Mapping):
            res = _requirements(**res)
        elif not isinstance(res, _requirements):
            raise TypeError("required_resources must be a ResourceRequirements, a mapping or "
                            f"None, got {type(res).__name__}")
        self.required_resources = res
        self.c_cpu = res.cpu_percent
        self.c_mem = res.memory_mb
        self.c_net = res.network_mbps
        return 0

    @property
    def prefix(self):
        """The prefix's block hashes as a read-only ``numpy.uint64`` array
        (a view of ``prefix_bytes``), or ``None``."""
        if self.prefix_bytes is None:
            return None
        return np.frombuffer(self.prefix_bytes, dtype=_U64)

    cdef tuple _key(self):
        return (self.request_id, self.task_id, self.priority, self.timeout_s,
                self.required_resources, self.metadata, self.requested_at, self.movable,
                self.exclude, self.tenant, self.cost, self.affinity_key, self.prefix_bytes)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == (<AllocationRequest>other)._key()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._key() != (<AllocationRequest>other)._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (f"{type(self).__name__}(request_id={self.request_id!r}, "
                f"task_id={self.task_id!r}, priority={self.priority!r}, "
                f"timeout_s={self.timeout_s!r}, "
                f"required_resources={self.required_resources!r}, "
                f"metadata={self.metadata!r}, requested_at={self.requested_at!r}, "
                f"movable={self.movable!r}, exclude={self.exclude!r}, "
                f"tenant={self.tenant!r}, cost={self.cost!r}, "
                f"affinity_key={self.affinity_key!r}, prefix={self.prefix!r})")

    def __reduce__(self):
        return (type(self), (self.request_id, self.task_id, self.priority, self.timeout_s,
                             self.required_resources,
                             None if self.metadata is None else dict(self.metadata),
                             self.requested_at, self.movable, self.exclude, self.tenant,
                             self.cost, self.affinity_key, self.prefix))


cdef object _exclusions(object ex):
    if isinstance(ex, (str, bytes)) or not isinstance(ex, Iterable):
        raise TypeError(f"exclude must be an iterable of agent ids or None, "
                        f"got {type(ex).__name__}")
    ex = frozenset(ex)
    for a in ex:
        if not isinstance(a, str):
            raise TypeError(f"exclude must hold str agent ids, got {type(a).__name__}")
    return ex or None


cdef object _pack_prefix(object prefix):
    """Validate block hashes and pack them as native uint64 words (None when
    empty)."""
    cdef Py_ssize_t n, k
    cdef uint64_t* out
    cdef bytes buf
    if isinstance(prefix, (str, bytes, bytearray, memoryview)) or not isinstance(prefix,
                                                                                  Iterable):
        raise TypeError(f"prefix must be a sequence of int block hashes or None, "
                        f"got {type(prefix).__name__}")
    if isinstance(prefix, np.ndarray):
        return _pack_array(prefix)
    if not isinstance(prefix, (list, tuple)):
        prefix = tuple(prefix)
    n = len(prefix)
    if n > MAX_PREFIX_BLOCKS:
        raise ValueError(f"prefix must have at most {MAX_PREFIX_BLOCKS} blocks, got {n}")
    if n == 0:
        return None
    buf = PyBytes_FromStringAndSize(NULL, n * 8)
    out = <uint64_t*>PyBytes_AS_STRING(buf)
    for k in range(n):
        v = prefix[k]
        if type(v) is not int:
            if isinstance(v, bool) or not isinstance(v, Integral):
                raise TypeError(f"prefix must hold int block hashes, got {type(v).__name__} "
                                f"at position {k}")
            v = int(v)
        try:
            out[k] = PyLong_AsUnsignedLongLong(v)
        except OverflowError:
            raise ValueError(f"prefix block hashes must be within [0, 2**64), got {v!r} "
                             f"at position {k}") from None
    return buf


cdef object _pack_array(object a):
    if a.ndim != 1:
        raise ValueError(f"prefix must be one-dimensional, got {a.ndim} dimensions")
    if a.shape[0] > MAX_PREFIX_BLOCKS:
        raise ValueError(f"prefix must have at most {MAX_PREFIX_BLOCKS} blocks, "
                         f"got {a.shape[0]}")
    kind = a.dtype.kind
    if kind == "O":
        return _pack_prefix(a.tolist())
    if kind not in "iu":
        raise TypeError(f"prefix must hold integer block hashes, got dtype {a.dtype}")
    if a.shape[0] == 0:
        return None
    if kind == "i" and (a < 0).any():
        raise ValueError("prefix block hashes must be within [0, 2**64), got a negative one")
    return np.ascontiguousarray(a, dtype=_U64).tobytes()
