"""What one benchmark run measured, as plain data that round-trips through JSON."""

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import Sample


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float

    @classmethod
    def of_seconds(cls, values: list[float]) -> "Percentiles | None":
        """Percentiles in milliseconds, or None with too few values to cut."""
        if len(values) < 2:
            return None
        cuts = statistics.quantiles([v * 1000 for v in values], n=100)
        return cls(statistics.median(values) * 1000, cuts[94], cuts[98])


@dataclass
class ScenarioResult:
    name: str
    conversations: int
    messages: int
    answers: int
    errors: int
    # Medians over the repeats.
    answers_per_second: float
    cpu_us_per_answer: float
    queries_per_answer: float
    peak_rss_mib: float
    # Over the answers of every repeat together.
    first_delta_ms: Percentiles | None
    final_ms: Percentiles | None


@dataclass
class Repeat:
    """One timed pass of a scenario's load."""

    samples: list[Sample]
    errors: list[str]
    answers_per_second: float
    cpu_seconds: float
    queries: int


def summarize(
    name: str, conversations: int, messages: int, repeats: list[Repeat], peak: float
) -> ScenarioResult:
    samples = [s for r in repeats for s in r.samples]
    answered = [r for r in repeats if r.samples]
    return ScenarioResult(
        name=name,
        conversations=conversations,
        messages=messages,
        answers=len(samples),
        errors=sum(len(r.errors) for r in repeats),
        answers_per_second=_median([r.answers_per_second for r in answered]),
        cpu_us_per_answer=_median(
            [r.cpu_seconds * 1e6 / len(r.samples) for r in answered]
        ),
        queries_per_answer=_median([r.queries / len(r.samples) for r in answered]),
        peak_rss_mib=peak,
        first_delta_ms=Percentiles.of_seconds(
            [s.first_delta for s in samples if s.first_delta is not None]
        ),
        final_ms=Percentiles.of_seconds([s.final for s in samples]),
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


@dataclass
class TwoTabFigures:
    web_processes: int
    visitors: int
    messages: int
    asked: int
    other_tab_live: int
    other_tab_with_deltas: int
    asking_final_ms: Percentiles | None
    other_tab_final_ms: Percentiles | None
    errors: list[str]


@dataclass
class AgentFigures:
    """Customers on web-1, their agent's console on web-2."""

    customers: int
    messages: int
    sent_each_way: int
    to_agent_ms: Percentiles | None
    to_customer_ms: Percentiles | None
    errors: list[str]


@dataclass
class IdleFigures:
    sockets: int
    opened: int
    rss_mib: float
    kib_per_socket: float
    errors: int


@dataclass
class TurnFigures:
    turn: int
    prompt_tokens: int | None
    queries: int
    final_ms: float


@dataclass
class Target:
    what: str
    goal: str
    measured: str
    met: bool | None


@dataclass
class RunResults:
    machine: dict[str, str]
    settings: dict[str, Any]
    scenarios: list[ScenarioResult] = field(default_factory=list)
    two_tabs: TwoTabFigures | None = None
    agent: AgentFigures | None = None
    idle: list[IdleFigures] = field(default_factory=list)
    idle_baseline_mib: float = 0.0
    turns: list[TurnFigures] = field(default_factory=list)
    retrieval: list[dict[str, Any]] = field(default_factory=list)
    fake_llm_mean_ms: float = 0.0
    # Millions of instructions per answer (or per message, for a baseline)
    # under callgrind, by scenario.
    instructions: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0

    def scenario(self, name: str) -> ScenarioResult | None:
        return next((s for s in self.scenarios if s.name == name), None)
