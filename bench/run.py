"""`make bench`: the real stack under load, beside two bare baselines.

    python -m bench.run [--conversations 50] [--messages 8] [--repeats 2]

Starts a fake model, a Celery worker and uvicorn processes on free loopback
ports against PostgreSQL (database `support_bot_bench`, created if missing) and
Redis (databases 11 and 12, flushed), drives them with bench.loadgen, and
writes bench/results/ (results.json, results.md, chart.png). Server logs go to
var/bench/. Every process started here is stopped on the way out, whether the
run ends, fails, is interrupted or runs out of its time limit.
"""

import argparse
import asyncio
import json
import logging
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import uvloop

from bench import loadgen, report
from bench.figures import (
    AgentFigures,
    IdleFigures,
    Percentiles,
    Repeat,
    RunResults,
    TurnFigures,
    TwoTabFigures,
    summarize,
)
from bench.processes import (
    Processes,
    Started,
    cpu_seconds,
    free_port,
    memory_kib,
    raise_on_signals,
    wait_for_http,
    wait_for_log,
)

logger = logging.getLogger("bench")

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
LOG_DIR = BASE_DIR / "var" / "bench"
PYTHON = sys.executable

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/support_bot_bench"
ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/11"
BROKER_URL = "redis://127.0.0.1:6379/12"
# Enough sockets for 5,000 idle widgets on each side of the loopback, plus the
# database, Redis and log files.
WANTED_FILES = 12_000
TURN_MARKS = (1, 10, 50, 200)
IDLE_STEPS = (1_000, 5_000)
PARTS = ("load", "idle", "memory", "retrieval", "instructions")
# Customers who ask for a person on web-1 while the agent is on web-2.
AGENT_CUSTOMERS = 20
AGENT_MESSAGES = 5
# Messages counted under callgrind, one conversation at a time, after a
# warm-up; valgrind runs Python some fifty times slower.
COUNTED_ANSWERS = 10
COUNTED_INSERTS = 50

T = TypeVar("T")


class TimeLimitReached(Exception):
    pass


def server_env(llm_port: int) -> dict[str, str]:
    """The environment every server of the run shares: deployed, on loopback."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "support_bot.settings",
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-secret-key-never-deployed-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "LLM_MODEL": "bench-model",
            "WIDGET_ALLOWED_ORIGINS": loadgen.ORIGIN,
            # The per-socket rate limit would hold back a widget that asks as
            # fast as answers come; capacity, not the limit, is measured here.
            "WIDGET_RATE_BURST": "1000000",
            # Every question is answered, so the whole answer path is timed: a
            # hand-over would stop a conversation's later questions.
            "CONFIDENCE_THRESHOLD": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)
    return env


class Stack:
    """The processes of the run and how to reach them."""

    def __init__(self, procs: Processes, env: dict[str, str]) -> None:
        self.procs = procs
        self.env = env
        self.agent_cookie = ""

    def start_server(
        self, name: str, app: str, under: list[str] | None = None
    ) -> tuple[Started, int]:
        """Start uvicorn as deployed; `under` is a command to run it under."""
        port = free_port()
        argv = [*(under or []), PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1"]
        # The deployed command line (Dockerfile), on a port of our own.
        argv += ["--port", str(port), "--ws-max-size", "1048576"]
        argv += ["--ws-per-message-deflate", "false", "--no-access-log"]
        server = self.procs.start(name, argv, self.env, BASE_DIR)
        wait_for_http(stats_url(port), server, timeout=300 if under else 60)
        return server, port

    def start_fake_llm(self, name: str, *, exact_tokens: bool) -> int:
        port = free_port()
        argv = [PYTHON, "-m", "bench.fake_llm_server", "--port", str(port)]
        if exact_tokens:
            argv.append("--exact-tokens")
        started = self.procs.start(name, argv, self.env, BASE_DIR)
        wait_for_http(f"http://127.0.0.1:{port}/stats", started)
        return port

    def start_worker(self) -> None:
        argv = [PYTHON, "-m", "celery", "-A", "support_bot", "worker"]
        # One process: it only folds long conversations, and every core it
        # keeps busy is taken from the server being measured.
        argv += ["--concurrency", "1", "--loglevel", "INFO", "--without-gossip"]
        argv += ["--without-mingle", "--without-heartbeat"]
        worker = self.procs.start("celery-worker", argv, self.env, BASE_DIR)
        wait_for_log(worker, "ready.")


def stats_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/__bench/stats"


def read_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, Any] = json.load(response)
        return data


def queries_so_far(port: int) -> int:
    return int(read_json(stats_url(port))["queries"])


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    # The load generator shares the two cores; uvloop keeps its share small.
    return uvloop.run(coroutine)


# --- preparing the database and Redis -----------------------------------------


def prepare_storage(env: dict[str, str]) -> dict[str, str]:
    """Create and migrate the bench database, empty it, load the demo articles."""
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'support_bot_bench'"
        ).fetchone()
        if exists is None:
            admin.execute("CREATE DATABASE support_bot_bench")
        versions = {"postgresql": str(admin.info.server_version)}

    for name in ("DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "DATABASE_URL"):
        os.environ[name] = env[name]
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ["CELERY_BROKER_URL"] = BROKER_URL
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.echo_table import EchoRow, ensure_table
    from conversations.models import Visitor

    call_command("migrate", verbosity=0, interactive=False)
    with open(os.devnull, "w") as quiet:
        call_command("load_demo", no_users=True, stdout=quiet)
    ensure_table()
    # Trains the retrieval classifier once for every server of the run (they
    # read it from the cache folder), callgrind's included.
    from knowledge import index as knowledge_index

    knowledge_index.get_index(knowledge_index.current_version())
    with connection.cursor() as cursor:
        tables = ", ".join([Visitor._meta.db_table, EchoRow._meta.db_table])
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    connection.close()

    import redis

    for url in (REDIS_URL, BROKER_URL):
        client = redis.Redis.from_url(url)
        client.flushdb()
        versions["redis"] = str(client.info("server")["redis_version"])
        client.close()
    return versions


def bench_agent_cookie() -> str:
    """A signed-in support agent for the console's socket, as a Cookie header."""
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client

    from escalation.models import AGENTS_GROUP, AgentProfile

    user, _ = User.objects.get_or_create(
        username="bench-agent", defaults={"first_name": "Bench"}
    )
    user.groups.add(Group.objects.get_or_create(name=AGENTS_GROUP)[0])
    AgentProfile.objects.update_or_create(
        user=user, defaults={"capacity": AGENT_CUSTOMERS}
    )
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    connection.close()
    return cookie


# --- the scenarios ----------------------------------------------------------------


def timed_load(
    server: Started, port: int, url: str, conversations: int, messages: int
) -> Repeat:
    before_cpu, before_queries = cpu_seconds(server.pid), queries_so_far(port)
    result = run_async(loadgen.run_load(url, conversations, messages))
    cpu = cpu_seconds(server.pid) - before_cpu
    queries = queries_so_far(port) - before_queries
    return Repeat(
        samples=result.samples,
        errors=result.errors,
        answers_per_second=result.answers_per_second,
        cpu_seconds=cpu,
        queries=queries,
    )


def timed_load_on_two(
    servers: list[tuple[Started, int]], conversations: int, messages: int
) -> Repeat:
    """`timed_load` with the conversations shared between two web processes,
    as a proxy in front of them would share them."""
    before_cpu = sum(cpu_seconds(s.pid) for s, _ in servers)
    before_queries = sum(queries_so_far(port) for _, port in servers)
    shares = [conversations // 2, conversations - conversations // 2]

    async def both() -> list[loadgen.LoadResult]:
        return list(
            await asyncio.gather(
                *(
                    loadgen.run_load(f"ws://127.0.0.1:{port}/ws/widget/", n, messages)
                    for (_, port), n in zip(servers, shares, strict=True)
                )
            )
        )

    results = run_async(both())
    samples = [s for r in results for s in r.samples]
    return Repeat(
        samples=samples,
        errors=[e for r in results for e in r.errors],
        answers_per_second=len(samples) / max(r.seconds for r in results),
        cpu_seconds=sum(cpu_seconds(s.pid) for s, _ in servers) - before_cpu,
        queries=sum(queries_so_far(port) for _, port in servers) - before_queries,
    )


def load_scenarios(stack: Stack, args: argparse.Namespace, out: RunResults) -> None:
    """The same load on the echo baseline, the insert baseline and the product.

    Repeats alternate between the three, so a burst of noise from the rest of
    the machine lands on all of them rather than on one.
    """
    baselines, base_port = stack.start_server(
        "baselines", "bench.baselines:application"
    )
    chat, chat_port = stack.start_server("web-1", "bench.product_app:application")
    urls = {
        "echo baseline": (baselines, base_port, f"ws://127.0.0.1:{base_port}/ws/echo/"),
        "echo + insert baseline": (
            baselines,
            base_port,
            f"ws://127.0.0.1:{base_port}/ws/insert/",
        ),
        "chat path": (chat, chat_port, f"ws://127.0.0.1:{chat_port}/ws/widget/"),
    }
    # Warm up: imports, database connections, the retrieval index, the SDK.
    for _, _, url in urls.values():
        run_async(loadgen.run_load(url, 10, 2))

    runs: dict[str, list[Repeat]] = {name: [] for name in urls}
    for repeat in range(args.repeats):
        for name, (server, port, url) in urls.items():
            logger.info("%s, pass %d", name, repeat + 1)
            runs[name].append(
                timed_load(server, port, url, args.conversations, args.messages)
            )
    for name, (server, _, _) in urls.items():
        peak = memory_kib(server.pid)["VmHWM"] / 1024
        out.scenarios.append(
            summarize(name, args.conversations, args.messages, runs[name], peak)
        )

    logger.info("chat path, one conversation")
    single = [
        timed_load(chat, chat_port, urls["chat path"][2], 1, args.single_messages)
    ]
    peak = memory_kib(chat.pid)["VmHWM"] / 1024
    out.scenarios.append(
        summarize("chat path, C=1", 1, args.single_messages, single, peak)
    )
    stack.procs.stop(baselines)
    two_web_processes(stack, chat, chat_port, args, out)
    stack.procs.stop(chat)


def two_web_processes(
    stack: Stack,
    first: Started,
    first_port: int,
    args: argparse.Namespace,
    out: RunResults,
) -> None:
    """The chat load shared by two web processes; one visitor in two tabs on
    the two, both of which must get the answer; an agent on one and the
    customers on the other."""
    second, second_port = stack.start_server("web-2", "bench.product_app:application")
    logger.info("chat path on two web processes")
    servers = [(first, first_port), (second, second_port)]
    run_async(loadgen.run_load(f"ws://127.0.0.1:{second_port}/ws/widget/", 10, 2))
    repeats = [
        timed_load_on_two(servers, args.conversations, args.messages)
        for _ in range(args.repeats)
    ]
    peak = max(memory_kib(s.pid)["VmHWM"] for s, _ in servers) / 1024
    out.scenarios.append(
        summarize(
            "chat path, 2 web processes",
            args.conversations,
            args.messages,
            repeats,
            peak,
        )
    )

    logger.info("two web processes, two tabs per visitor")
    visitors, messages = 20, 5
    result = run_async(
        loadgen.run_two_tabs(
            f"ws://127.0.0.1:{first_port}/ws/widget/",
            f"ws://127.0.0.1:{second_port}/ws/widget/",
            visitors,
            messages,
        )
    )
    logger.info("two web processes, an agent on one, customers on the other")
    agent = run_async(
        loadgen.run_agent(
            f"ws://127.0.0.1:{first_port}/ws/widget/",
            f"ws://127.0.0.1:{second_port}/ws/agent/",
            f"http://127.0.0.1:{second_port}",
            stack.agent_cookie,
            AGENT_CUSTOMERS,
            AGENT_MESSAGES,
        )
    )
    stack.procs.stop(second)
    out.agent = AgentFigures(
        customers=agent.customers,
        messages=AGENT_MESSAGES,
        sent_each_way=agent.sent_each_way,
        to_agent_ms=Percentiles.of_seconds(agent.to_agent),
        to_customer_ms=Percentiles.of_seconds(agent.to_customer),
        errors=agent.errors[:5],
    )
    out.two_tabs = TwoTabFigures(
        web_processes=2,
        visitors=visitors,
        messages=messages,
        asked=result.asked,
        other_tab_live=result.other_tab_live,
        other_tab_with_deltas=result.other_tab_deltas,
        asking_final_ms=Percentiles.of_seconds([s.final for s in result.asking]),
        other_tab_final_ms=Percentiles.of_seconds([s.final for s in result.other]),
        errors=result.errors[:5],
    )


def instruction_counts(stack: Stack, out: RunResults) -> None:
    """Millions of instructions per message in the server, under callgrind.

    One conversation at a time, so the count does not depend on how the
    machine schedules concurrent work; counters are zeroed after a warm-up
    and dumped after the counted messages.
    """
    counted_messages = {"insert": COUNTED_INSERTS, "widget": COUNTED_ANSWERS}
    for name, app, path in (
        ("echo + insert baseline", "bench.baselines:application", "insert"),
        ("chat path", "bench.product_app:application", "widget"),
    ):
        logger.info("%s under callgrind", name)
        out_file = LOG_DIR / f"callgrind-{path}.out"
        for old in LOG_DIR.glob(f"callgrind-{path}.out*"):
            old.unlink()
        # Instrumentation starts only for the counted messages: the warm-up
        # (imports, training the retrieval classifier) runs ten times faster.
        under = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        under.append(f"--callgrind-out-file={out_file}")
        server, port = stack.start_server(f"callgrind-{path}", app, under)
        url = f"ws://127.0.0.1:{port}/ws/{path}/"
        # The first answer loads the embeddings and builds the index, minutes
        # under valgrind.
        timeouts = loadgen.ANSWER_TIMEOUT, loadgen.OPEN_TIMEOUT
        loadgen.ANSWER_TIMEOUT = loadgen.OPEN_TIMEOUT = 600.0
        try:
            # Every question once, so that what is kept per article and per
            # text (the guardrails' reading of articles, embeddings) is warm,
            # as it is in a server that has been answering for a while.
            warm_up = run_async(loadgen.run_load(url, 1, len(loadgen.QUESTIONS)))
            if warm_up.errors:
                raise RuntimeError(f"{name} failed under callgrind: {warm_up.errors}")
            for switch in ("--instr=on", "--zero"):
                subprocess.run(
                    ["callgrind_control", switch, str(server.pid)], check=True
                )
            result = run_async(loadgen.run_load(url, 1, counted_messages[path]))
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True)
        finally:
            loadgen.ANSWER_TIMEOUT, loadgen.OPEN_TIMEOUT = timeouts
            stack.procs.stop(server)
        if result.errors or not result.samples:
            logger.warning("%s under callgrind failed: %s", name, result.errors[:3])
            continue
        dumps = sorted(LOG_DIR.glob(f"callgrind-{path}.out.*"))
        counted = _callgrind_total(dumps[-1]) if dumps else 0
        out.instructions[name] = counted / len(result.samples) / 1e6


def _callgrind_total(path: Path) -> int:
    """The instruction count of one callgrind dump (its "totals:" line)."""
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise ValueError(f"no totals in {path}")


def idle_sockets(stack: Stack, out: RunResults) -> None:
    """RSS of a fresh web process holding 1,000, then 5,000 idle widgets."""
    server, port = stack.start_server("web-idle", "bench.product_app:application")
    url = f"ws://127.0.0.1:{port}/ws/widget/"

    async def hold() -> None:
        held: list[loadgen.Widget] = []
        # A few first sockets load what every later one shares.
        await loadgen.open_idle(url, 20, held)
        await asyncio.sleep(1)
        start = memory_kib(server.pid)["VmRSS"]
        out.idle_baseline_mib = start / 1024
        opened_before = len(held)
        for step in IDLE_STEPS:
            logger.info("opening idle sockets up to %d", step)
            errors = await loadgen.open_idle(
                url, step - len(held) + opened_before, held
            )
            await asyncio.sleep(2)
            rss = memory_kib(server.pid)["VmRSS"]
            opened = len(held) - opened_before
            out.idle.append(
                IdleFigures(
                    sockets=step,
                    opened=opened,
                    rss_mib=rss / 1024,
                    kib_per_socket=(rss - start) / max(opened, 1),
                    errors=len(errors),
                )
            )
        await loadgen.close_all(held)

    try:
        run_async(hold())
    finally:
        stack.procs.stop(server)


def long_conversation(stack: Stack, turns: int, out: RunResults) -> None:
    """One conversation of `turns` answers: prompt size and queries per turn.

    The model here counts prompt tokens with the product's tokenizer, and the
    Celery worker folds old turns into the summary as they pass the budget.
    """
    llm_port = stack.start_fake_llm("fake-llm-exact", exact_tokens=True)
    env = {**stack.env, "OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1"}
    server, port = Stack(stack.procs, env).start_server(
        "web-memory", "bench.product_app:application"
    )
    url = f"ws://127.0.0.1:{port}/ws/widget/"
    per_turn: dict[int, tuple[int, float]] = {}

    async def converse() -> str | None:
        widget = await loadgen.Widget.open(url)
        last = queries_so_far(port)

        async def after(turn: int, sample: loadgen.Sample) -> None:
            nonlocal last
            now = await asyncio.to_thread(queries_so_far, port)
            per_turn[turn] = (now - last, sample.final)
            last = now

        await loadgen.each_turn(widget, turns, after)
        await widget.close()
        return widget.token

    token = run_async(converse())
    stack.procs.stop(server)
    tokens = prompt_tokens_by_turn(token)
    for mark in TURN_MARKS:
        if mark in per_turn:
            # The median of the turns up to the mark: the bot settings and the
            # articles' version are read at most once a second, a statement
            # that lands on whichever turn is answered then.
            window = [
                per_turn[t][0] for t in range(mark - 4, mark + 1) if t in per_turn
            ]
            final = per_turn[mark][1]
            out.turns.append(
                TurnFigures(
                    mark, tokens.get(mark), int(statistics.median(window)), final * 1000
                )
            )


def prompt_tokens_by_turn(token: str | None) -> dict[int, int]:
    """prompt_tokens stored in each bot answer's metadata, by question number."""
    from conversations.models import Message, Visitor, hash_token

    if token is None:
        return {}
    visitor = Visitor.objects.get(token_hash=hash_token(token))
    answers = Message.objects.filter(
        conversation__visitor=visitor, role=Message.Role.BOT
    ).order_by("seq")
    return {
        number: int(message.metadata.get("prompt_tokens") or 0)
        for number, message in enumerate(answers, start=1)
    }


def retrieval(out: RunResults, sizes: tuple[int, ...]) -> None:
    from bench.retrieval_time import time_retrieval

    for size in sizes:
        logger.info("retrieval over %d articles", size)
        out.retrieval.append(asdict(time_retrieval(size)))


# --- the run ------------------------------------------------------------------------


def raise_file_limit() -> int:
    """Raise this process's open-file limit; the servers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_FILES if hard == resource.RLIM_INFINITY else min(WANTED_FILES, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return max(soft, wanted)


def machine(versions: dict[str, str]) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{memory_kb / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": versions.get("postgresql", "?"),
        "redis": versions.get("redis", "?"),
        "commit": commit or "?",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def run(args: argparse.Namespace, procs: Processes) -> RunResults:
    started = time.monotonic()
    files = raise_file_limit()
    llm_env = server_env(0)
    versions = prepare_storage(llm_env)
    out = RunResults(
        machine=machine(versions),
        settings={
            "conversations": args.conversations,
            "messages": args.messages,
            "repeats": args.repeats,
            "single_messages": args.single_messages,
            "turns": args.turns,
            "open_files": files,
        },
    )
    stack = Stack(procs, llm_env)
    stack.agent_cookie = bench_agent_cookie()
    llm_port = stack.start_fake_llm("fake-llm", exact_tokens=False)
    stack.env = server_env(llm_port)
    stack.start_worker()

    if "load" in args.parts:
        load_scenarios(stack, args, out)
        out.fake_llm_mean_ms = float(
            read_json(f"http://127.0.0.1:{llm_port}/stats")["mean_ms"]
        )
    if "idle" in args.parts:
        idle_sockets(stack, out)
    if "memory" in args.parts:
        long_conversation(stack, args.turns, out)
    if "retrieval" in args.parts:
        retrieval(out, args.articles)
    if "instructions" in args.parts:
        instruction_counts(stack, out)
    out.seconds = time.monotonic() - started
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the chat path.")
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--single-messages", type=int, default=30)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument(
        "--articles", type=int, nargs="*", default=[1_000, 10_000], metavar="N"
    )
    parser.add_argument(
        "--parts",
        nargs="*",
        choices=PARTS,
        default=list(PARTS),
        help="which measurements to take (all by default)",
    )
    parser.add_argument(
        "--time-limit", type=int, default=540, help="seconds before the run stops"
    )
    return parser.parse_args(argv)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeLimitReached("the run passed its time limit")


def main(argv: list[str] | None = None) -> int:
    # A handler of its own: setting Django up later replaces the root logger's.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s bench: %(message)s", "%X"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    args = parse_args(argv)
    raise_on_signals()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.time_limit)
    procs = Processes(LOG_DIR)
    try:
        results = run(args, procs)
    except (KeyboardInterrupt, TimeLimitReached) as stop:
        logger.error("stopped: %s", stop or "interrupted")
        return 1
    finally:
        signal.alarm(0)
        procs.stop_all()
    report.write(results, RESULTS_DIR)
    logger.info("done in %.0f s; see %s", results.seconds, RESULTS_DIR / "results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
