"""RedisLeaseStore: the lease store on Redis, for replicas in many processes.

Every operation is one Lua script (atomic in Redis, one round trip) that
mirrors :class:`~arbiter_core.fleet.InMemoryLeaseStore` rule for rule (see
:mod:`arbiter_core.fleet.store`).  Keys, all under one hash tag so a cluster
keeps a pool on one shard::

    <prefix>:{<pool>}:meta          hash: incarnation (new when the state was lost)
    <prefix>:{<pool>}:agents        hash: agent -> "max_tasks|weight"
    <prefix>:{<pool>}:members       hash: member -> "expires_at|demand"
    <prefix>:{<pool>}:m:<member>    string with a TTL of lease_ttl_s: the member is alive
    <prefix>:{<pool>}:lease:<member> hash: agent -> slots
    <prefix>:{<pool>}:orphans       hash: "agent\\nmember" -> "slots|expired_at|noticed_seq"
    <prefix>:{<pool>}:reports       hash: agent -> "active|at"
    <prefix>:{<pool>}:pending       hash: agent -> JSON of the report the members settle
    <prefix>:{<pool>}:synced        hash: member -> "seq|seq" of its last two syncs

A member is alive while its ``m:`` key exists *and* its ``expires_at`` is
ahead of the store's time, so a dead member's lease expires by itself
(Redis drops the key) and the scripts turn it into orphans at the next
operation.  The store's time is Redis ``TIME`` -- or, when a ``clock`` is
given (tests, simulation), that clock's reading passed to every script; the
``m:`` keys then get ten minutes of slack so that only the injected clock
decides.  Every key carries a TTL (refreshed on each write, at least a day)
so an abandoned pool disappears from Redis.

Requires redis-py (``pip install arbiter-runtime[fleet]``) and Redis >= 5.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

from .._validate import check_int, check_positive
from ..clock import Clock
from .store import (
    AgentSpec,
    LeaseStoreError,
    SyncResult,
    _check_agent_id,
    _check_incarnation,
    _check_usage,
)

__all__ = ["RedisLeaseStore"]

_LUA = r"""
local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local ttl = tonumber(ARGV[3])
local max_task = tonumber(ARGV[4])
local key_ttl_ms = tonumber(ARGV[5])
local gc_ms = tonumber(ARGV[6])
local fresh_inc = ARGV[7]
local K_META, K_AGENTS, K_MEMBERS = P .. 'meta', P .. 'agents', P .. 'members'
local K_ORPH, K_REP = P .. 'orphans', P .. 'reports'
local K_PEND, K_SYNC = P .. 'pending', P .. 'synced'
local seq = 0
-- operations are numbered: reports, deaths and syncs are ordered by this
local function bump() seq = redis.call('HINCRBY', K_META, 'seq', 1) end

local function split(s)
  local out, start = {}, 1
  while true do
    local i = string.find(s, '|', start, true)
    if not i then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end
local function fmt(x) return string.format('%.17g', x) end
local function sorted_keys(t)
  local ids = {}
  for k, _ in pairs(t) do ids[#ids + 1] = k end
  table.sort(ids)
  return ids
end
local function gc(extra)
  for _, k in ipairs({K_META, K_AGENTS, K_MEMBERS, K_ORPH, K_REP, K_PEND, K_SYNC}) do
    redis.call('PEXPIRE', k, gc_ms)
  end
  if extra then redis.call('PEXPIRE', extra, gc_ms) end
end
local function incarnation()
  local inc = redis.call('HGET', K_META, 'incarnation')
  if not inc then
    inc = fresh_inc
    redis.call('HSET', K_META, 'incarnation', inc)
  end
  return inc
end
local function agents()
  local raw = redis.call('HGETALL', K_AGENTS)
  local mx, w = {}, {}
  for i = 1, #raw, 2 do
    local f = split(raw[i + 1])
    mx[raw[i]] = tonumber(f[1]); w[raw[i]] = tonumber(f[2])
  end
  return mx, w
end
local function members()
  local raw = redis.call('HGETALL', K_MEMBERS)
  local exp, dem = {}, {}
  for i = 1, #raw, 2 do
    local f = split(raw[i + 1])
    exp[raw[i]] = tonumber(f[1]); dem[raw[i]] = tonumber(f[2])
  end
  return exp, dem
end
local function lease_of(m)
  local raw = redis.call('HGETALL', P .. 'lease:' .. m)
  local l = {}
  for i = 1, #raw, 2 do l[raw[i]] = tonumber(raw[i + 1]) end
  return l
end
local function orphans()
  local raw = redis.call('HGETALL', K_ORPH)
  local o = {}
  for i = 1, #raw, 2 do
    local a, m = string.match(raw[i], '^(.*)\n(.*)$')
    local f = split(raw[i + 1])
    o[a] = o[a] or {}
    o[a][m] = {tonumber(f[1]), tonumber(f[2]), tonumber(f[3])}
  end
  return o
end
local function alive(m, exp)
  return exp > now and redis.call('EXISTS', P .. 'm:' .. m) == 1
end

-- deaths -> orphans; orphans past max_task_time end
local function maintain()
  local exp = members()
  for _, m in ipairs(sorted_keys(exp)) do
    if not alive(m, exp[m]) then
      local l = lease_of(m)
      for a, n in pairs(l) do
        if n > 0 then
          local f = a .. '\n' .. m
          local old = redis.call('HGET', K_ORPH, f)
          local add = 0
          if old then add = tonumber(split(old)[1]) end
          redis.call('HSET', K_ORPH, f, (n + add) .. '|' .. fmt(exp[m]) .. '|' .. seq)
        end
      end
      redis.call('DEL', P .. 'lease:' .. m, P .. 'm:' .. m)
      redis.call('HDEL', K_MEMBERS, m)
      redis.call('HDEL', K_SYNC, m)
    end
  end
  local raw = redis.call('HGETALL', K_ORPH)
  for i = 1, #raw, 2 do
    if tonumber(split(raw[i + 1])[2]) <= now - max_task then
      redis.call('HDEL', K_ORPH, raw[i])
    end
  end
end

local function fair_shares(dem, capacity)
  local ids = sorted_keys(dem)
  local share = {}
  for _, x in ipairs(ids) do share[x] = 0 end
  local rem = math.max(0, capacity)
  local unmet = {}
  for _, x in ipairs(ids) do if dem[x] > 0 then unmet[#unmet + 1] = x end end
  while rem > 0 and #unmet > 0 do
    local q = math.floor(rem / #unmet)
    if q == 0 then
      for i = 1, rem do share[unmet[i]] = share[unmet[i]] + 1 end
      rem = 0
      break
    end
    local nxt = {}
    for _, x in ipairs(unmet) do
      local give = math.min(q, dem[x] - share[x])
      share[x] = share[x] + give
      rem = rem - give
      if share[x] < dem[x] then nxt[#nxt + 1] = x end
    end
    unmet = nxt
  end
  for _, x in ipairs(ids) do
    if rem <= 0 then break end
    if dem[x] <= 0 then share[x] = 1; rem = rem - 1 end
  end
  local busy = {}
  for _, x in ipairs(ids) do if dem[x] > 0 then busy[#busy + 1] = x end end
  if rem > 0 and #busy > 0 then
    local q = math.floor(rem / #busy)
    local r = rem - q * #busy
    for i, x in ipairs(busy) do
      local extra = 0
      if i <= r then extra = 1 end
      share[x] = share[x] + q + extra
    end
  end
  return share
end

local function spread_grant(free, want)
  local ids = {}
  for _, a in ipairs(sorted_keys(free)) do if free[a] > 0 then ids[#ids + 1] = a end end
  local got = {}
  local left = math.max(0, want)
  local level = 0
  while left > 0 and #ids > 0 do
    local nxt = {}
    for _, a in ipairs(ids) do
      if left <= 0 then break end
      got[a] = (got[a] or 0) + 1
      left = left - 1
      if free[a] > level + 1 then nxt[#nxt + 1] = a end
    end
    level = level + 1
    ids = nxt
  end
  return got
end

local function shed(held, usage, excess)
  local t = {}
  for a, v in pairs(held) do t[a] = v end
  local ids = sorted_keys(t)
  local left = excess
  for _, a in ipairs(ids) do
    if left <= 0 then break end
    local u = math.max(tonumber(usage[a] or 0), 0)
    local idle = t[a] - math.min(u, t[a])
    local take = math.min(idle, left)
    t[a] = t[a] - take
    left = left - take
  end
  for _, a in ipairs(ids) do
    if left <= 0 then break end
    local take = math.min(t[a], left)
    t[a] = t[a] - take
    left = left - take
  end
  return t
end

local function orphan_sums(o)
  local s = {}
  for a, om in pairs(o) do
    local n = 0
    for _, v in pairs(om) do n = n + v[1] end
    if n > 0 then s[a] = n end
  end
  return s
end

-- the pending report on agent a: settled once every member it waits for
-- answered or died (counted as running nothing); the orphans noticed before
-- it come back if it shows no more tasks than the members ran
local function settle(a, p, exp)
  for x, _ in pairs(p.need) do
    if p.got[x] == nil and exp[x] then
      redis.call('HSET', K_PEND, a, cjson.encode(p))
      return
    end
  end
  redis.call('HDEL', K_PEND, a)
  local ran = 0
  for _, v in pairs(p.got) do ran = ran + v end
  local o = orphans()
  if o[a] and p.n <= ran then
    for x, v in pairs(o[a]) do
      if v[3] <= p.seq then redis.call('HDEL', K_ORPH, a .. '\n' .. x) end
    end
  end
end

local function settle_with(m, steady)
  local prev = redis.call('HGET', K_SYNC, m)
  local prev2, prev1 = -1, -1
  if prev then
    local f = split(prev)
    prev2, prev1 = tonumber(f[1]), tonumber(f[2])
  end
  local exp = members()
  local raw = redis.call('HGETALL', K_PEND)
  local pend = {}
  for i = 1, #raw, 2 do pend[raw[i]] = cjson.decode(raw[i + 1]) end
  for _, a in ipairs(sorted_keys(pend)) do
    local p = pend[a]
    if p.need[m] and p.got[m] == nil then
      local v = nil
      if prev2 < p.seq and p.seq < prev1 then v = tonumber(steady[a] or 0)
      elseif p.seq < prev2 then v = 0 end
      if v then
        p.got[m] = v
        settle(a, p, exp)
      end
    end
  end
  redis.call('HSET', K_SYNC, m, prev1 .. '|' .. seq)
end

local function wanted(m)
  local out = {}
  local raw = redis.call('HGETALL', K_PEND)
  for i = 1, #raw, 2 do
    local p = cjson.decode(raw[i + 1])
    if p.need[m] and p.got[m] == nil then out[#out + 1] = raw[i] end
  end
  table.sort(out)
  return out
end

if op == 'sync' then
  bump()
  maintain()
  local m, demand = ARGV[8], tonumber(ARGV[9])
  local held, usage = cjson.decode(ARGV[10]), cjson.decode(ARGV[11])
  local known = ARGV[12]
  local inc = incarnation()
  -- a member that saw another incarnation: the state was lost, the leases
  -- are rebuilt from the members' claims before any free slot is granted
  local rec = tonumber(redis.call('HGET', K_META, 'recover_until') or '-1e308')
  if known ~= '' and known ~= inc then
    rec = math.max(rec, now + ttl)
    redis.call('HSET', K_META, 'recover_until', fmt(rec))
  end
  local recovering = now < rec
  settle_with(m, cjson.decode(ARGV[13]))
  local amax, aw = agents()
  local o = orphans()
  -- a member coming back adopts its orphans: its claims replace them
  for a, om in pairs(o) do
    if om[m] then om[m] = nil; redis.call('HDEL', K_ORPH, a .. '\n' .. m) end
  end
  local osum = orphan_sums(o)
  local exp, dem = members()
  local others = {}
  for x, _ in pairs(exp) do
    if x ~= m then
      for a, n in pairs(lease_of(x)) do others[a] = (others[a] or 0) + n end
    end
  end
  local lease = {}
  for _, a in ipairs(sorted_keys(held)) do
    local h = tonumber(held[a])
    if amax[a] and h > 0 then
      local v = math.min(h, math.max(0, amax[a] - (others[a] or 0) - (osum[a] or 0)))
      if v > 0 then lease[a] = v end
    end
  end
  dem[m] = demand
  local capacity = 0
  for a, mx in pairs(amax) do capacity = capacity + math.max(0, mx - (osum[a] or 0)) end
  local share = fair_shares(dem, capacity)[m]
  local total = 0
  for _, v in pairs(lease) do total = total + v end
  local targets = {}
  if total > share then
    targets = shed(lease, usage, total - share)
  elseif recovering then
    for a, v in pairs(lease) do targets[a] = v end
  else
    local free = {}
    for a, mx in pairs(amax) do
      local used = (others[a] or 0) + (lease[a] or 0) + (osum[a] or 0)
      if mx > used then free[a] = mx - used end
    end
    for a, g in pairs(spread_grant(free, share - total)) do lease[a] = (lease[a] or 0) + g end
    for a, v in pairs(lease) do targets[a] = v end
  end
  -- only what changed is written (one call per 500 fields)
  local lk = P .. 'lease:' .. m
  local old, put, gone = lease_of(m), {}, {}
  for a, v in pairs(lease) do
    if old[a] ~= v then put[#put + 1] = a; put[#put + 1] = v end
  end
  for a, _ in pairs(old) do if lease[a] == nil then gone[#gone + 1] = a end end
  for i = 1, #put, 1000 do
    redis.call('HSET', lk, unpack(put, i, math.min(i + 999, #put)))
  end
  for i = 1, #gone, 500 do
    redis.call('HDEL', lk, unpack(gone, i, math.min(i + 499, #gone)))
  end
  redis.call('HSET', K_MEMBERS, m, fmt(now + ttl) .. '|' .. demand)
  redis.call('SET', P .. 'm:' .. m, fmt(now + ttl), 'PX', key_ttl_ms)
  gc(lk)
  local av = tonumber(redis.call('HGET', K_META, 'agents_ver') or '0')
  local ag = nil
  if tonumber(ARGV[14]) ~= av or known ~= inc then
    ag = {}
    for a, mx in pairs(amax) do ag[a] = {mx, fmt(aw[a])} end
  end
  return cjson.encode({leases = lease, targets = targets, agents = ag, agents_version = av,
                       expires_at = fmt(now + ttl), now = fmt(now), share = share,
                       incarnation = inc, orphaned = osum, recovering = recovering,
                       pending_reports = wanted(m)})
elseif op == 'report' then
  local a, n = ARGV[8], tonumber(ARGV[9])
  -- checked before anything is written: a failed call changes nothing
  if redis.call('HEXISTS', K_AGENTS, a) == 0 then
    return redis.error_reply('unknown agent_id')
  end
  bump()
  maintain()
  redis.call('HSET', K_REP, a, n .. '|' .. fmt(now))
  local o = orphans()
  if o[a] and redis.call('HEXISTS', K_PEND, a) == 0 then
    -- the members that may run tasks there settle it
    local need = {}
    local exp = members()
    for x, _ in pairs(exp) do
      if (tonumber(redis.call('HGET', P .. 'lease:' .. x, a)) or 0) > 0 then need[x] = 1 end
    end
    settle(a, {n = n, seq = seq, need = need, got = {}}, exp)
  end
  gc(nil)
  return 1
elseif op == 'register' then
  incarnation()
  redis.call('HSET', K_AGENTS, ARGV[8], ARGV[9] .. '|' .. ARGV[10])
  redis.call('HINCRBY', K_META, 'agents_ver', 1)
  gc(nil)
  return 1
elseif op == 'remove' then
  local a = ARGV[8]
  redis.call('HDEL', K_AGENTS, a)
  redis.call('HINCRBY', K_META, 'agents_ver', 1)
  redis.call('HDEL', K_REP, a)
  redis.call('HDEL', K_PEND, a)
  local exp = members()
  for x, _ in pairs(exp) do redis.call('HDEL', P .. 'lease:' .. x, a) end
  local raw = redis.call('HKEYS', K_ORPH)
  for _, f in ipairs(raw) do
    if string.sub(f, 1, #a + 1) == a .. '\n' then redis.call('HDEL', K_ORPH, f) end
  end
  return 1
elseif op == 'leave' then
  bump()
  maintain()
  local m = ARGV[8]
  local usage = cjson.decode(ARGV[9])
  local l = lease_of(m)
  local any = false
  for a, n in pairs(l) do
    any = true
    local keep = math.min(n, tonumber(usage[a] or 0))
    if keep > 0 then
      redis.call('HSET', K_ORPH, a .. '\n' .. m, keep .. '|' .. fmt(now) .. '|' .. seq)
    end
  end
  if not any then
    -- declared dead before it left: it knows what its tasks still use
    for a, om in pairs(orphans()) do
      local v = om[m]
      if v then
        local keep = math.min(v[1], tonumber(usage[a] or 0))
        if keep > 0 then
          redis.call('HSET', K_ORPH, a .. '\n' .. m, keep .. '|' .. fmt(v[2]) .. '|' .. v[3])
        else
          redis.call('HDEL', K_ORPH, a .. '\n' .. m)
        end
      end
    end
  end
  redis.call('DEL', P .. 'lease:' .. m, P .. 'm:' .. m)
  redis.call('HDEL', K_MEMBERS, m)
  redis.call('HDEL', K_SYNC, m)
  return 1
elseif op == 'leases' then
  local exp = members()
  local out = {}
  for x, e in pairs(exp) do
    if alive(x, e) then
      local f = {}
      for a, n in pairs(lease_of(x)) do if n > 0 then f[a] = n end end
      out[x] = f
    end
  end
  return cjson.encode(out)
elseif op == 'state' then
  local amax, aw = agents()
  local ag = {}
  for a, mx in pairs(amax) do ag[a] = {mx, fmt(aw[a])} end
  local exp, dem = members()
  local d = {}
  for x, e in pairs(exp) do if alive(x, e) then d[x] = dem[x] end end
  local all = {}
  for x, _ in pairs(exp) do all[x] = lease_of(x) end
  return cjson.encode({agents = ag, orphans = orphan_sums(orphans()), demands = d,
                       all_leases = all})
end
return redis.error_reply('unknown op ' .. tostring(op))
"""


def _dict(v: Any) -> dict[str, Any]:
    # cjson encodes an empty Lua table as {} (never []), but be lenient
    return v if isinstance(v, dict) else {}


class RedisLeaseStore:
    """A lease store in Redis (see the module docstring for the keys).

    Parameters
    ----------
    client : redis.Redis
        A redis-py client (``decode_responses`` either way).
    pool : str
        The pool's name: members and agents of one pool share it.
    lease_ttl_s, max_task_time_s : float
        As in :class:`~arbiter_core.fleet.InMemoryLeaseStore`.
    clock : Clock, optional
        ``None`` (default): the store's time is Redis ``TIME``.  A clock
        (ManualClock in tests and simulation) is read here and passed to
        every script instead.
    prefix : str
        Key prefix (default ``"arbiter:fleet"``).
    timeout_s : float, optional
        Every call's socket connect and read timeout (default
        ``min(1, lease_ttl_s / 4)``).  redis-py's defaults (no read timeout,
        several retries with back-off) let a call to a frozen Redis hang for
        long; the store talks through its own client on ``client``'s
        connection settings with this timeout, so a call takes at most about
        ``(retries + 1) * 2 * timeout_s``.  (A client without a connection
        pool, such as a cluster client, is used as given.)
    retries : int
        Retries of a call that failed on a connection error or a timeout
        (default 1, without back-off: a stale connection after a Redis
        restart is replaced at once).

    Raises
    ------
    LeaseStoreError
        From every operation when Redis cannot be reached or fails (the
        redis-py error is chained); members count it and keep serving.
    """

    def __init__(self, client: Any, pool: str = "default", lease_ttl_s: float = 10.0,
                 max_task_time_s: float = 3600.0, *, clock: Clock | None = None,
                 prefix: str = "arbiter:fleet", timeout_s: float | None = None,
                 retries: int = 1) -> None:
        _check_agent_id(pool, "pool")
        if "{" in pool or "}" in pool:
            raise ValueError(f"pool must not contain braces, got {pool!r}")
        ttl = check_positive(lease_ttl_s, "lease_ttl_s")
        self._timeout = (min(1.0, ttl / 4.0) if timeout_s is None
                         else check_positive(timeout_s, "timeout_s"))
        self._retries = check_int(retries, "retries", 0)
        client = _bounded(client, self._timeout, self._retries)
        self._client = client
        self._pool = pool
        self._ttl = check_positive(lease_ttl_s, "lease_ttl_s")
        self._max_task = check_positive(max_task_time_s, "max_task_time_s")
        self._clock = clock
        self._prefix = f"{prefix}:{{{pool}}}:"
        key_ttl = math.ceil(self._ttl * 1000.0)
        self._key_ttl_ms = key_ttl if clock is None else key_ttl + 600_000
        self._gc_ms = max(86_400_000, math.ceil(2000.0 * (self._ttl + self._max_task)))
        self._script = client.register_script(_LUA)

    @property
    def lease_ttl_s(self) -> float:
        return self._ttl

    @property
    def max_task_time_s(self) -> float:
        return self._max_task

    @property
    def pool(self) -> str:
        return self._pool

    @property
    def client(self) -> Any:
        """The client the store talks through (bounded: see ``timeout_s``)."""
        return self._client

    @property
    def timeout_s(self) -> float:
        return self._timeout

    def _call(self, op: str, *args: object) -> Any:
        now = "" if self._clock is None else repr(float(self._clock.now()))
        argv = [op, now, repr(self._ttl), repr(self._max_task), self._key_ttl_ms,
                self._gc_ms, uuid.uuid4().hex, *args]
        try:
            return self._script(keys=[self._prefix], args=argv)
        except Exception as exc:
            import redis

            if isinstance(exc, redis.ResponseError) and "unknown agent_id" in str(exc):
                raise KeyError(f"unknown agent_id {args[0]!r}") from None
            if isinstance(exc, redis.RedisError):
                raise LeaseStoreError(f"redis {op} failed: {exc!r}") from exc
            raise

    @staticmethod
    def _json(raw: Any) -> dict[str, Any]:
        if isinstance(raw, bytes):
            raw = raw.decode()
        return _dict(json.loads(raw))

    # -- agents ---------------------------------------------------------------

    def register_agent(self, agent_id: str, max_tasks: int, weight: float = 1.0) -> None:
        """Add an agent, or update its ``max_tasks``/weight."""
        _check_redis_id(agent_id)
        mt = check_int(max_tasks, "max_tasks", 1)
        w = check_positive(weight, "weight")
        self._call("register", agent_id, mt, repr(w))

    def remove_agent(self, agent_id: str) -> None:
        """Remove an agent (unknown ids are harmless)."""
        self._call("remove", agent_id)

    def report_agent(self, agent_id: str, active_tasks: int) -> None:
        """The agent's own count of running tasks (may free orphaned slots)."""
        n = check_int(active_tasks, "active_tasks", 0)
        self._call("report", agent_id, n)

    # -- reading --------------------------------------------------------------

    def leases(self) -> dict[str, dict[str, int]]:
        """Live members' leases, read in one script (an atomic snapshot)."""
        out = self._json(self._call("leases"))
        return {m: {a: int(n) for a, n in _dict(lease).items()} for m, lease in out.items()}

    def _state(self) -> dict[str, Any]:
        return self._json(self._call("state"))

    def orphans(self) -> dict[str, int]:
        return {a: int(n) for a, n in _dict(self._state()["orphans"]).items()}

    def agents(self) -> dict[str, AgentSpec]:
        return {a: AgentSpec(int(v[0]), float(v[1]))
                for a, v in _dict(self._state()["agents"]).items()}

    def demands(self) -> dict[str, int]:
        return {m: int(d) for m, d in _dict(self._state()["demands"]).items()}

    def _check_invariants(self) -> None:
        st = self._state()
        orph = _dict(st["orphans"])
        for a, v in _dict(st["agents"]).items():
            used = int(orph.get(a, 0))
            used += sum(int(_dict(lease).get(a, 0)) for lease in _dict(st["all_leases"]).values())
            assert used <= int(v[0]), (a, used, v[0])

    # -- members --------------------------------------------------------------

    def sync(self, member_id: str, demand: int, held: Mapping[str, int],
             usage: Mapping[str, int], *, incarnation: str = "",
             steady: Mapping[str, int] | None = None,
             agents_version: int = -1) -> SyncResult:
        """See :meth:`InMemoryLeaseStore.sync`; one script, one round trip."""
        _check_redis_id(member_id, "member_id")
        d = check_int(demand, "demand", 0)
        h = _check_usage(held, "held")
        u = _check_usage(usage, "usage")
        inc = _check_incarnation(incarnation)
        st = _check_usage(steady or {}, "steady")
        av = check_int(agents_version, "agents_version", -1)
        r = self._json(self._call("sync", member_id, d, json.dumps(h), json.dumps(u), inc,
                                  json.dumps(st), av))
        agents = r.get("agents")
        return SyncResult(
            leases={a: int(n) for a, n in _dict(r["leases"]).items() if int(n) > 0},
            targets={a: int(n) for a, n in _dict(r["targets"]).items()},
            agents=None if agents is None else
            {a: AgentSpec(int(v[0]), float(v[1])) for a, v in _dict(agents).items()},
            expires_at=float(r["expires_at"]),
            now=float(r["now"]),
            share=int(r["share"]),
            incarnation=str(r["incarnation"]),
            orphaned={a: int(n) for a, n in _dict(r["orphaned"]).items()},
            recovering=bool(r.get("recovering", False)),
            pending_reports=tuple(sorted(r.get("pending_reports") or ())),
            agents_version=int(r.get("agents_version", 0)),
        )

    def leave(self, member_id: str, usage: Mapping[str, int]) -> None:
        u = _check_usage(usage, "usage")
        self._call("leave", member_id, json.dumps(u))

    def clear(self) -> None:
        """Delete this pool's keys (tests, tear-down)."""
        try:
            keys = list(self._client.scan_iter(match=self._prefix.replace("{", "[{]")
                                               .replace("}", "[}]") + "*"))
            if keys:
                self._client.delete(*keys)
        except Exception as exc:
            raise LeaseStoreError(f"redis clear failed: {exc!r}") from exc

    def __repr__(self) -> str:
        return f"RedisLeaseStore(pool={self._pool!r}, lease_ttl_s={self._ttl})"


def _bounded(client: Any, timeout_s: float, retries: int) -> Any:
    """A client on ``client``'s connection settings whose calls are bounded
    by ``timeout_s`` per attempt and ``retries`` retries without back-off."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if pool is None or not isinstance(kwargs, dict):
        return client
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    kw = dict(kwargs)
    kw.update(socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
              retry=Retry(NoBackoff(), retries))
    kw.pop("retry_on_timeout", None)
    bounded_pool = redis.ConnectionPool(connection_class=pool.connection_class, **kw)
    return redis.Redis(connection_pool=bounded_pool)


def _check_redis_id(value: object, name: str = "agent_id") -> str:
    v = _check_agent_id(value, name)
    if "\n" in v:
        raise ValueError(f"{name} must not contain a newline, got {v!r}")
    return v
