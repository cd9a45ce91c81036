"""Turning a run's figures into bench/results/: JSON, a Markdown table, a chart.

The targets are judged here, from the figures alone, so a results.json from an
earlier run can be judged again after the targets change.
"""

import json
from dataclasses import asdict
from pathlib import Path

from bench.figures import Percentiles, RunResults, ScenarioResult, Target

ECHO = "echo baseline"
INSERT = "echo + insert baseline"
CHAT = "chat path"
CHAT_SINGLE = "chat path, C=1"


def write(results: RunResults, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    results.targets = judge(results)
    (directory / "results.json").write_text(
        json.dumps(asdict(results), indent=2) + "\n"
    )
    (directory / "results.md").write_text(markdown(results))
    chart(results, directory / "chart.png")


# --- targets --------------------------------------------------------------------


def _server_first_delta(scenario: ScenarioResult | None, llm_ms: float) -> float | None:
    """Median time to the first delta, less the fake model's own time."""
    if scenario is None or scenario.first_delta_ms is None:
        return None
    return scenario.first_delta_ms.p50 - llm_ms


def _at_most(what: str, goal: float, value: float | None, unit: str) -> Target:
    measured = "not measured" if value is None else f"{value:,.1f} {unit}"
    met = None if value is None else value <= goal
    return Target(what, f"≤ {goal:,.0f} {unit}", measured, met)


def judge(results: RunResults) -> list[Target]:
    chat, insert = results.scenario(CHAT), results.scenario(INSERT)
    targets: list[Target] = []
    if chat and insert and insert.answers_per_second:
        ratio = chat.answers_per_second / insert.answers_per_second
        targets.append(
            Target(
                "chat throughput / insert baseline, C=50",
                "≥ 0.33",
                f"{ratio:.2f}",
                ratio >= 1 / 3,
            )
        )
    if chat:
        targets.append(
            Target(
                "chat answers per second, C=50",
                "≥ 300",
                f"{chat.answers_per_second:,.0f}",
                chat.answers_per_second >= 300,
            )
        )
    llm = results.fake_llm_mean_ms
    for name, goal in ((CHAT_SINGLE, 10.0), (CHAT, 50.0)):
        label = "C=1" if name == CHAT_SINGLE else "C=50"
        value = _server_first_delta(results.scenario(name), llm)
        targets.append(_at_most(f"first bot.delta p50, {label}", goal, value, "ms"))
    targets += _idle_targets(results)
    targets += _turn_targets(results)
    big = max(results.retrieval, key=lambda r: r["articles"], default=None)
    if big is not None:
        targets.append(
            _at_most(
                f"retrieval p95 over {big['articles']:,} articles",
                20,
                float(big["search_ms_p95"]),
                "ms",
            )
        )
    if results.agent is not None:
        agent = results.agent
        expected = agent.customers * agent.messages
        targets.append(
            Target(
                "two web processes: agent on one, customer on the other, "
                "every message live both ways",
                f"{expected} of {expected}",
                f"{agent.sent_each_way} of {expected}",
                expected > 0 and agent.sent_each_way == expected,
            )
        )
    if results.two_tabs is not None:
        tabs = results.two_tabs
        targets.append(
            Target(
                "two web processes: the other tab gets every answer live",
                f"{tabs.asked} of {tabs.asked}",
                f"{tabs.other_tab_live} of {tabs.asked}",
                tabs.asked > 0 and tabs.other_tab_live == tabs.asked,
            )
        )
    return targets


def _idle_targets(results: RunResults) -> list[Target]:
    if not results.idle:
        return []
    most = results.idle[-1]
    return [
        _at_most(
            f"RSS per idle widget at {most.sockets:,} sockets",
            60,
            most.kib_per_socket,
            "KiB",
        ),
        Target(
            "idle widgets held by one web process",
            "5,000",
            f"{most.opened:,} ({most.errors} failed)",
            most.opened >= 5_000 and most.errors == 0,
        ),
    ]


def _turn_targets(results: RunResults) -> list[Target]:
    turns = {t.turn: t for t in results.turns}
    targets: list[Target] = []
    if 10 in turns and len(turns) > 1:
        last = results.turns[-1]
        queries = ", ".join(f"{t.queries} (turn {t.turn})" for t in results.turns)
        targets.append(
            Target(
                "SQL statements per answer do not grow with the conversation",
                f"turn {last.turn} ≤ turn 10",
                queries,
                last.queries <= turns[10].queries,
            )
        )
    if 50 in turns and len(turns) > 2:
        first = turns[50].prompt_tokens or 0
        last_tokens = results.turns[-1].prompt_tokens or 0
        growth = (last_tokens - first) / first if first else 0.0
        shown = ", ".join(f"{t.prompt_tokens} (turn {t.turn})" for t in results.turns)
        targets.append(
            Target(
                "prompt tokens flat once the memory budget is reached",
                f"turn {results.turns[-1].turn} within 25 % of turn 50",
                shown,
                abs(growth) <= 0.25,
            )
        )
    return targets


# --- Markdown -------------------------------------------------------------------


def _pct(p: Percentiles | None) -> str:
    if p is None:
        return "-"
    return f"{p.p50:.1f} / {p.p95:.1f} / {p.p99:.1f}"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def scenario_table(results: RunResults) -> list[str]:
    echo, insert = results.scenario(ECHO), results.scenario(INSERT)
    echo_rate = echo.answers_per_second if echo else 0.0
    insert_rate = insert.answers_per_second if insert else 0.0
    insert_cpu = insert.cpu_us_per_answer if insert else 0.0
    lines = [
        "| scenario | C x M | answers/s | vs echo | vs insert | first delta ms "
        "p50/p95/p99 | final message ms p50/p95/p99 | server CPU µs/answer | "
        "CPU vs insert | SQL/answer | peak RSS MiB | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results.scenarios:
        rate = s.answers_per_second
        lines.append(
            f"| {s.name} | {s.conversations} x {s.messages} | {rate:,.0f} "
            f"| {_ratio(rate, echo_rate)} | {_ratio(rate, insert_rate)} "
            f"| {_pct(s.first_delta_ms)} "
            f"| {_pct(s.final_ms)} | {s.cpu_us_per_answer:,.0f} "
            f"| {_ratio(s.cpu_us_per_answer, insert_cpu)} "
            f"| {s.queries_per_answer:.1f} | {s.peak_rss_mib:.0f} | {s.errors} |"
        )
    return lines


def _other_tables(results: RunResults) -> list[str]:
    lines: list[str] = []
    if results.idle:
        lines += [
            "",
            f"Idle widgets (one fresh web process, {results.idle_baseline_mib:.0f} MiB "
            "with 20 sockets open):",
            "",
            "| idle sockets | opened | RSS MiB | KiB per socket | failed |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {i.sockets:,} | {i.opened:,} | {i.rss_mib:.0f} "
            f"| {i.kib_per_socket:.1f} | {i.errors} |"
            for i in results.idle
        ]
    if results.turns:
        lines += [
            "",
            "One long conversation (prompt tokens counted with the product's "
            "tokenizer; SQL statements per answer, the median of the five turns "
            "up to this one):",
            "",
            "| turn | prompt tokens | SQL statements | final message ms |",
            "|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {t.turn} | {t.prompt_tokens} | {t.queries} | {t.final_ms:.1f} |"
            for t in results.turns
        ]
    if results.retrieval:
        lines += [
            "",
            "Retrieval (ArticleIndex over synthetic articles, one query at a time):",
            "",
            "| articles | vectors | build s | search ms p50 | search ms p95 |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['articles']:,} | {r['vectors']:,} | {r['build_seconds']:.1f} "
            f"| {r['search_ms_p50']:.2f} | {r['search_ms_p95']:.2f} |"
            for r in results.retrieval
        ]
    return lines


def _two_tab_lines(results: RunResults) -> list[str]:
    tabs = results.two_tabs
    if tabs is None:
        return []
    return [
        "",
        f"Two web processes behind the Redis layer: {tabs.visitors} visitors, each "
        f"asking {tabs.messages} questions in a tab on web-1 while a second tab of "
        f"the same visitor is open on web-2. The second tab received "
        f"{tabs.other_tab_live} of {tabs.asked} answers live "
        f"({tabs.other_tab_with_deltas} with streamed deltas: the other tabs get "
        "an answer's pieces only once it has taken 0.1 s); final message ms "
        f"p50/p95/p99: asking tab {_pct(tabs.asking_final_ms)}, other tab "
        f"{_pct(tabs.other_tab_final_ms)}.",
    ]


def _instruction_lines(results: RunResults) -> list[str]:
    counts = results.instructions
    if not counts:
        return []
    lines = [
        "",
        "Instructions counted by valgrind's callgrind in the server process (all "
        "its threads), one conversation at a time; repeatable within a few per "
        "cent, so compare versions by these:",
        "",
        "| scenario | million instructions per message | vs insert baseline |",
        "|---|---:|---:|",
    ]
    base = counts.get("echo + insert baseline")
    for name, millions in counts.items():
        ratio = f"{millions / base:.1f}x" if base else "-"
        lines.append(f"| {name} | {millions:.2f} | {ratio} |")
    return lines


def _agent_lines(results: RunResults) -> list[str]:
    agent = results.agent
    if agent is None:
        return []
    return [
        "",
        f"An agent on web-2, customers on web-1: {agent.customers} customers ask "
        "for a person, the agent's console on the other web process takes every "
        f"conversation, and each side sends {agent.messages} messages. Delivered "
        f"live each way: {agent.sent_each_way} of {agent.customers * agent.messages}"
        f"; ms p50/p95/p99 customer to agent {_pct(agent.to_agent_ms)}, agent to "
        f"customer {_pct(agent.to_customer_ms)}.",
    ]


def _target_lines(results: RunResults) -> list[str]:
    marks = {True: "met", False: "**missed**", None: "not measured"}
    lines = ["", "| target | goal | measured | |", "|---|---|---|---|"]
    lines += [
        f"| {t.what} | {t.goal} | {t.measured} | {marks[t.met]} |"
        for t in results.targets
    ]
    return lines


def markdown(results: RunResults) -> str:
    m = results.machine
    lines = [
        "# Benchmark results",
        "",
        f"{m['date']}, commit {m['commit']}; {m['cpu']}, {m['memory']}, Linux "
        f"{m['kernel']}, Python {m['python']}, PostgreSQL {m['postgresql']}, "
        f"Redis {m['redis']}. Whole run: {results.seconds:.0f} s.",
        "",
    ]
    lines += scenario_table(results)
    lines += [
        "",
        f"The fake model's own time per request: {results.fake_llm_mean_ms:.2f} ms "
        "(mean, from a complete request to its whole response written).",
    ]
    lines += _instruction_lines(results)
    lines += _two_tab_lines(results)
    lines += _agent_lines(results)
    lines += _other_tables(results)
    lines += _target_lines(results)
    return "\n".join(lines) + "\n"


# --- chart ----------------------------------------------------------------------


def chart(results: RunResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results.scenarios
    names = [s.name.replace(" baseline", "\nbaseline") for s in scenarios]
    figure, (rate, cpu, latency) = plt.subplots(1, 3, figsize=(15, 4.5))
    rate.bar(names, [s.answers_per_second for s in scenarios], color="#4c72b0")
    rate.set_title("answers per second")
    cpu.bar(names, [s.cpu_us_per_answer for s in scenarios], color="#dd8452")
    cpu.set_title("server CPU µs per answer")
    p50 = [s.final_ms.p50 if s.final_ms else 0 for s in scenarios]
    p99 = [s.final_ms.p99 if s.final_ms else 0 for s in scenarios]
    positions = range(len(scenarios))
    latency.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50")
    latency.bar([p + 0.2 for p in positions], p99, width=0.4, label="p99")
    latency.set_xticks(list(positions), names)
    latency.set_title("to the final message, ms")
    latency.legend()
    # Baselines and the chat path differ by orders of magnitude.
    for axes in (rate, cpu, latency):
        axes.set_yscale("log")
        axes.tick_params(axis="x", labelsize=8)
    figure.suptitle(f"make bench, {results.machine['date']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
