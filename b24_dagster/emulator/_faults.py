"""Fault injection: the failures a real portal (or the network in front of it) produces.

Each kind of fault is a :class:`FaultRule` in :class:`FaultSettings`. A rule fires on a
request when the request is *eligible* (its Bitrix24 method matches ``methods``, if given)
and any of its triggers holds:

* ``rate``: a probability per eligible request, drawn from one RNG seeded with
  ``FaultSettings.seed`` (the same seed and the same request sequence give the same faults);
* ``every``: every Nth eligible request (N, 2N, ...);
* ``requests``: eligible request numbers ``(first, last)``, counted from 1, inclusive.

At most one fault is injected per request; the kinds are tried in the order of
:data:`FAULT_KINDS`. The counters of injected faults per kind are in
:attr:`FaultInjector.counts`.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["FAULT_KINDS", "FaultInjector", "FaultRule", "FaultSettings", "parse_fault_spec"]

#: Every fault kind, in the order they are considered.
#: ``close_before``: the connection is closed before the request is processed (nothing runs);
#: ``storm_503``: a burst of ``length`` consecutive 503 ``QUERY_LIMIT_EXCEEDED`` answers;
#: ``error_500``: 500 ``INTERNAL_SERVER_ERROR`` (nothing runs);
#: ``html_error``: an HTML error page with status ``status`` (default 502; nothing runs);
#: ``slow``: the answer is delayed by ``delay`` seconds (the request runs normally);
#: ``close_after``: the request runs (and commits), then the connection closes unanswered;
#: ``malformed_json``: the request runs, the answer body is truncated JSON;
#: ``v3_batch_drop``: a successful v3 batch answer loses one entry of its ``result`` array.
FAULT_KINDS: tuple[str, ...] = (
    "close_before", "storm_503", "error_500", "html_error", "slow",
    "close_after", "malformed_json", "v3_batch_drop",
)
#: Faults decided before the portal runs the request (the portal never sees it).
PRE_KINDS = frozenset({"close_before", "storm_503", "error_500", "html_error"})


@dataclass(slots=True)
class FaultRule:
    """When one kind of fault fires, and its parameters."""

    #: Probability per eligible request (0..1).
    rate: float = 0.0
    #: Fire on every Nth eligible request (0 = never).
    every: int = 0
    #: Fire on eligible requests number ``first..last`` (1-based, inclusive).
    requests: tuple[int, int] | None = None
    #: Only requests for these Bitrix24 methods (lower-case, e.g. ``"batch"``); None = all.
    methods: frozenset[str] | None = None
    #: ``storm_503``: consecutive requests answered 503 once the storm starts.
    length: int = 5
    #: ``slow``: seconds the answer is delayed.
    delay: float = 1.0
    #: ``html_error``: the HTTP status of the HTML page.
    status: int = 502

    def __post_init__(self) -> None:
        if self.methods is not None:
            self.methods = frozenset(m.lower() for m in self.methods)


@dataclass(slots=True)
class FaultSettings:
    """The faults to inject; a kind left as None never fires."""

    close_before: FaultRule | None = None
    storm_503: FaultRule | None = None
    error_500: FaultRule | None = None
    html_error: FaultRule | None = None
    slow: FaultRule | None = None
    close_after: FaultRule | None = None
    malformed_json: FaultRule | None = None
    v3_batch_drop: FaultRule | None = None
    #: Seed of the RNG behind every ``rate``.
    seed: int = 0

    def rules(self) -> Iterable[tuple[str, FaultRule]]:
        """The configured ``(kind, rule)`` pairs in the order they are considered."""
        for kind in FAULT_KINDS:
            rule = getattr(self, kind)
            if rule is not None:
                yield kind, rule


@dataclass(slots=True)
class Decision:
    """The fault chosen for one request: its kind and rule, or none."""

    kind: str | None = None
    rule: FaultRule | None = None

    @property
    def pre(self) -> bool:
        """True when the portal must not run the request."""
        return self.kind in PRE_KINDS


_NONE = Decision()


@dataclass(slots=True)
class FaultInjector:
    """Decides, request by request, which fault (if any) to inject. Thread-safe."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    _seen: dict[str, int] = field(default_factory=dict)
    _storm_left: int = 0
    _storm_rule: FaultRule | None = None
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng.seed(self.settings.seed)

    def configure(self, settings: FaultSettings | None) -> None:
        """Replace the rules (None = no faults); counters and request numbers restart."""
        with self._lock:
            self.settings = settings if settings is not None else FaultSettings()
            self._rng.seed(self.settings.seed)
            self._seen.clear()
            self._storm_left = 0
            self.counts.update(dict.fromkeys(FAULT_KINDS, 0))

    @property
    def active(self) -> bool:
        """True when any rule is configured (lets the server skip the bookkeeping)."""
        return any(True for _ in self.settings.rules()) or self._storm_left > 0

    def decide(self, method: str, api_version: int) -> Decision:
        """The fault for a request of ``method`` (lower-case), counted as one more request."""
        with self._lock:
            if self._storm_left > 0:
                self._storm_left -= 1
                self.counts["storm_503"] += 1
                return Decision("storm_503", self._storm_rule)
            chosen = _NONE
            for kind, rule in self.settings.rules():
                if rule.methods is not None and method not in rule.methods:
                    continue
                if kind == "v3_batch_drop" and (api_version != 3 or method != "batch"):
                    continue
                n = self._seen.get(kind, 0) + 1
                self._seen[kind] = n
                if chosen.kind is not None:
                    continue   # keep numbering every rule's eligible requests
                hit = (rule.every > 0 and n % rule.every == 0) or (
                    rule.requests is not None and rule.requests[0] <= n <= rule.requests[1])
                if not hit and rule.rate > 0:
                    hit = self._rng.random() < rule.rate
                if hit:
                    chosen = Decision(kind, rule)
            if chosen.kind == "storm_503":
                assert chosen.rule is not None
                self._storm_left = max(0, chosen.rule.length - 1)
                self._storm_rule = chosen.rule
            if chosen.kind is not None and chosen.kind != "v3_batch_drop":
                self.counts[chosen.kind] += 1
            return chosen

    def count(self, kind: str) -> None:
        """Record a fault that was applied after the fact (``v3_batch_drop``)."""
        with self._lock:
            self.counts[kind] += 1


_RULE_FIELDS = {f.name for f in dataclasses.fields(FaultRule)}


def parse_fault_spec(spec: str) -> tuple[str, FaultRule]:
    """Parse a command-line fault: ``KIND[:key=value,...]``.

    Keys are :class:`FaultRule` fields; ``requests=10-20`` is a range and
    ``methods=crm.deal.add+batch`` a ``+``-separated list. Examples::

        storm_503:every=100,length=10
        close_after:rate=0.05,methods=crm.deal.add
        slow:requests=1-3,delay=2.5
    """
    kind, _, rest = spec.partition(":")
    kind = kind.strip().replace("-", "_")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
    values: dict[str, object] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in _RULE_FIELDS:
            raise ValueError(f"bad fault option {item!r} in {spec!r}")
        if key == "requests":
            first, _, last = raw.partition("-")
            values[key] = (int(first), int(last or first))
        elif key == "methods":
            values[key] = frozenset(m for m in raw.split("+") if m)
        elif key in ("rate", "delay"):
            values[key] = float(raw)
        else:
            values[key] = int(raw)
    if not values:
        values["rate"] = 1.0
    return kind, FaultRule(**values)  # type: ignore[arg-type]
