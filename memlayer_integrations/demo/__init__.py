"""``memlayer demo``: watch a LangChain agent and a LlamaIndex chat engine remember a user.

Offline and in a few seconds: it starts the embedded MemLayer server on a temporary
database, creates a key, and lets each framework hold two sessions with ``alice`` (session 2
is answered from what she said in session 1) and one with ``bob``, who gets none of it.
Then it shows what MemLayer holds, the usage and quota of the key (and of a ``free``-plan
key), and what a bad key does.

The models are scripted (:mod:`memlayer_integrations.demo._scripted`): they answer from the
memories that reached their input, deterministically, without network or API key. To see
the same demo with a real model, name one (see ``memlayer demo --help``)::

    memlayer demo --langchain-model openai:gpt-4o-mini --llama-index-model openai:gpt-4o-mini

Importing this module loads no framework; :func:`run` does. ``ScriptedChatModel``,
``ScriptedLLM``, the context recorders and ``save_note`` are importable from here too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .._client import MemLayerClient
from .._exceptions import AuthenticationError
from .._logging import mask_key

__all__ = ["build_parser", "main", "run"]

DESCRIPTION = """\
Watch a LangChain agent and a LlamaIndex chat engine remember a user across sessions,
on an embedded MemLayer server (offline, a few seconds)."""
EPILOG = """\
models:
  By default both frameworks use scripted models that answer from the memories in their
  input: deterministic, offline, no API key. To use a real chat model instead:

    --langchain-model openai:gpt-4o-mini
        any "provider:model" of langchain.chat_models.init_chat_model; needs the provider's
        package and key (pip install langchain-openai; export OPENAI_API_KEY=...)
    --llama-index-model openai:gpt-4o-mini
        provider one of: {providers}; needs its package and key
        (pip install llama-index-llms-openai; export OPENAI_API_KEY=...)

  MEMLAYER_DEMO_MODEL=provider:model sets both at once.

The MemLayer server is always the embedded one: --db PATH keeps its database, so that
`memlayer keys list --db PATH` or `memlayer serve --db PATH` can look at it afterwards.
"""

#: LlamaIndex providers for --llama-index-model: provider -> (module, class, package).
LLAMA_INDEX_PROVIDERS = {
    "openai": ("llama_index.llms.openai", "OpenAI", "llama-index-llms-openai"),
    "anthropic": ("llama_index.llms.anthropic", "Anthropic", "llama-index-llms-anthropic"),
    "ollama": ("llama_index.llms.ollama", "Ollama", "llama-index-llms-ollama"),
    "google_genai": (
        "llama_index.llms.google_genai",
        "GoogleGenAI",
        "llama-index-llms-google-genai",
    ),
}
MODEL_ENV = "MEMLAYER_DEMO_MODEL"

FACT = "Hi! I'm on the Pro plan and I live in Oslo."
PLAN = "Pro plan"  # what a scripted answer from FACT names
QUESTIONS = ("Which plan am I on?", "Where do I live?")
SYSTEM_PROMPT = (
    "You are a friendly support assistant. Answer briefly, using what you remember about the user."
)
LANGCHAIN_AGENT = "demo_langchain_agent"
LLAMA_INDEX_AGENT = "demo_llama_index_engine"
#: (user, session id, what the session is, what the user says)
SCRIPT = (
    ("alice", "alice-session-1", "session 1", (FACT,)),
    (
        "alice",
        "alice-session-2",
        "session 2, a new conversation: nothing carried over but MemLayer",
        QUESTIONS,
    ),
    ("bob", "bob-session-1", "another user, same agent, same question", QUESTIONS[:1]),
)

_MODEL_NAMES = {
    "ScriptedChatModel",
    "ScriptedLLM",
    "LangChainContextRecorder",
    "LlamaIndexContextRecorder",
    "save_note",
}


def __getattr__(name: str) -> Any:
    # The scripted models need both frameworks; load them only when asked for.
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module("memlayer_integrations.demo._scripted"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Out:
    """Terminal output: colour only on a TTY (and never with NO_COLOR), plain ASCII marks
    when the stream cannot encode ``✓``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        isatty = getattr(stream, "isatty", lambda: False)
        self.color = (
            bool(isatty()) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        )
        # No encoding (a StringIO, say) means the stream takes any text.
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            "✓✗›·…".encode(self.encoding)
            self.ok, self.bad, self.arrow, self.dot = "✓", "✗", "›", "·"
        except (UnicodeEncodeError, LookupError):
            self.ok, self.bad, self.arrow, self.dot = "+", "x", ">", "-"

    def style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str = "", indent: int = 0) -> None:
        text = " " * indent + text
        text = text.encode(self.encoding, "replace").decode(self.encoding)
        print(text, file=self.stream, flush=True)

    def title(self, text: str) -> None:
        self.line()
        self.line(self.style(text, "1"))
        self.line(self.style("-" * len(text), "2"))

    def say(self, who: str, text: str, indent: int = 4) -> None:
        name = self.style(f"{who:>5} {self.arrow}", "36" if who != "agent" else "32")
        self.line(f"{name} {text}", indent)

    def mark(self, ok: bool, text: str, indent: int) -> None:
        self.line(
            f"{self.style(self.ok, '32') if ok else self.style(self.bad, '31')} {text}", indent
        )


# A turn runs one message through the framework: (user, session id, text) -> (reply, memories
# that reached the model's input).
Turn = Callable[[str, str, str], tuple[str, list[str]]]


def _conversations(
    out: _Out, turn: Turn, remembered: Callable[[str, str], list[str]]
) -> dict[tuple[str, str], list[tuple[str, list[str]]]]:
    """Plays :data:`SCRIPT`, printing each turn; returns (user, session) -> [(reply, recalled)]."""
    results: dict[tuple[str, str], list[tuple[str, list[str]]]] = {}
    for user, session, what, messages in SCRIPT:
        out.line()
        out.line(out.style(f"{user} {out.dot} {what}", "1"), 2)
        for text in messages:
            reply, recalled = turn(user, session, text)
            results.setdefault((user, session), []).append((reply, recalled))
            out.say(user, text)
            if recalled:
                out.line("recalled into the model's input:", 10)
                for memory in recalled:
                    out.mark(True, f'"{memory}"', 12)
            else:
                out.line(out.style(f"{out.dot} recalled: nothing", "2"), 10)
            out.say("agent", reply)
        stored = remembered(user, session)
        out.line(
            f"remembered from this session: {len(stored)} memor{'y' if len(stored) == 1 else 'ies'}",
            4,
        )
        for text in stored:
            out.mark(True, text, 6)
    return results


def _check(
    checks: list[tuple[bool, str]], results: dict[Any, Any], name: str, scripted: bool
) -> None:
    answer, recalled = results[("alice", "alice-session-2")][0]
    checks.append(
        (FACT in recalled, f"{name}: alice's session 2 recalled what she said in session 1")
    )
    if scripted:
        checks.append((PLAN in answer, f"{name}: the answer came from that memory ({answer!r})"))
    bob = [r for _, r in results[("bob", "bob-session-1")]]
    checks.append((not any(bob), f"{name}: bob recalled nothing of alice's"))


def _listed(client: MemLayerClient, agent_id: str) -> Callable[[str, str], list[str]]:
    def remembered(user: str, session: str) -> list[str]:
        memories = client.list_memories(user_id=user, agent_id=agent_id, session_id=session)
        return [f"{m.content}  ({m.metadata.get('role', 'memory')})" for m in memories]

    return remembered


def _langchain(
    out: _Out, client: MemLayerClient, model: Any, checks: list[tuple[bool, str]], scripted: bool
) -> None:
    from langchain.agents import create_agent
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver

    from ..langchain import MemLayerMiddleware, MemLayerStore, memlayer_namespace
    from ._scripted import LangChainContextRecorder, save_note

    out.title("1. LangChain: create_agent with MemLayerMiddleware and MemLayerStore")
    out.line(
        "The middleware recalls at the start of each turn and remembers what the user said at", 2
    )
    out.line(
        "its end; the agent's save_note tool keeps notes in the LangGraph store (MemLayerStore).", 2
    )
    store = MemLayerStore(client=client)
    memory = MemLayerMiddleware(agent_id=LANGCHAIN_AGENT, client=client)
    agent = create_agent(
        model,
        tools=[save_note],
        system_prompt=SYSTEM_PROMPT,
        middleware=[memory],
        store=store,
        checkpointer=InMemorySaver(),
    )
    recorder = LangChainContextRecorder()

    def turn(user: str, session: str, text: str) -> tuple[str, list[str]]:
        config: RunnableConfig = {
            "configurable": {"user_id": user, "thread_id": session},
            "callbacks": [recorder],
        }
        result = agent.invoke({"messages": [{"role": "user", "content": text}]}, config)
        return str(result["messages"][-1].text), recorder.take()

    results = _conversations(out, turn, _listed(client, LANGCHAIN_AGENT))
    memory.close()
    out.line()
    out.line(out.style("the LangGraph store: what save_note kept (store.search)", "1"), 2)
    for user in ("alice", "bob"):
        ns = memlayer_namespace(user, "notes")
        items = store.search(ns)
        out.line(f"{ns}: {len(items)} item{'' if len(items) == 1 else 's'}", 4)
        for item in items:
            out.mark(True, f"{item.key} = {item.value}", 6)
    _check(checks, results, "LangChain", scripted)


def _llama_index(
    out: _Out, client: MemLayerClient, llm: Any, checks: list[tuple[bool, str]], scripted: bool
) -> None:
    from llama_index.core.chat_engine import SimpleChatEngine

    from ..llama_index import MemLayerMemory
    from ._scripted import LlamaIndexContextRecorder

    out.title("2. LlamaIndex: SimpleChatEngine with MemLayerMemory")
    out.line(
        "MemLayerMemory keeps a short window in process, adds the memories recalled for each", 2
    )
    out.line(
        "message in front of it, and stores the user's message and the answer after each turn.", 2
    )
    engines: dict[tuple[str, str], Any] = {}
    memories: list[MemLayerMemory] = []
    with LlamaIndexContextRecorder() as recorder:

        def turn(user: str, session: str, text: str) -> tuple[str, list[str]]:
            if (user, session) not in engines:
                memory = MemLayerMemory(
                    user_id=user, agent_id=LLAMA_INDEX_AGENT, session_id=session, client=client
                )
                memories.append(memory)
                engines[(user, session)] = SimpleChatEngine.from_defaults(
                    llm=llm, memory=memory, system_prompt=SYSTEM_PROMPT
                )
            reply = engines[(user, session)].chat(text).response
            return str(reply), recorder.take()

        results = _conversations(out, turn, _listed(client, LLAMA_INDEX_AGENT))
    for memory in memories:
        memory.close()
    _check(checks, results, "LlamaIndex", scripted)


def _holdings(out: _Out, client: MemLayerClient) -> None:
    out.title("3. What MemLayer holds now (client.list_scopes())")
    scopes = client.list_scopes()
    width = max(len(s.agent_id) for s in scopes)
    out.line(f"{'user':<6} {'agent':<{width}}  memories", 2)
    for s in scopes:
        out.line(f"{s.user_id:<6} {s.agent_id:<{width}}  {s.memories:>8}", 2)


def _limit(value: int | None) -> str:
    return "no limit" if value is None else f"of {value}"


def _usage(out: _Out, server: Any, client: MemLayerClient, key: str) -> None:
    out.title("4. Usage and quota (client.usage())")
    u = client.usage()
    out.line(f"this demo's key {mask_key(key)}, plan {u.plan}:", 2)
    out.line(
        f"{u.memories_stored} memories stored ({_limit(u.memories_limit)}), "
        f"{u.requests_today} requests today ({_limit(u.requests_limit)})",
        4,
    )
    free_key = server.create_key(plan="free", name="demo-free")
    with MemLayerClient(api_key=free_key, base_url=server.url) as free:
        free.remember("I prefer e-mail to phone calls", user_id="carol", agent_id="demo")
        fu = free.usage()
        remaining = free.rate_limit.remaining if free.rate_limit is not None else None
    out.line(f"a free-plan key {mask_key(free_key)}, after one remember():", 2)
    out.line(
        f"{fu.memories_stored} memory stored ({_limit(fu.memories_limit)}), "
        f"{fu.requests_today} requests today ({_limit(fu.requests_limit)}), "
        f"resets {fu.resets_at:%Y-%m-%d %H:%M} UTC",
        4,
    )
    out.line(
        f"({fu.requests_today} requests: the remember() and this usage() call; every request "
        "made with a key counts against its daily quota, usage() included)",
        4,
    )
    out.line(f"X-RateLimit-Remaining: {remaining} (client.rate_limit)", 4)


def _bad_key(out: _Out, url: str, checks: list[tuple[bool, str]]) -> None:
    out.title("5. A bad key")
    code = [
        "try:",
        '    client = MemLayerClient(api_key="ml_live_invalid", base_url=url)',
        '    client.remember("test", user_id="u1", agent_id="bot")',
        "except AuthenticationError as e:",
        '    print(f"Authentication failed: {e}")',
    ]
    for text in code:
        out.line(out.style(text, "2"), 4)
    caught, client = False, None
    try:
        client = MemLayerClient(api_key="ml_live_invalid", base_url=url)
        client.remember("test", user_id="u1", agent_id="bot")
    except AuthenticationError as e:
        caught = True
        out.line(f"{out.arrow} Authentication failed: {e}", 2)
    finally:
        if client is not None:
            client.close()
    checks.append((caught, "a bad key raised AuthenticationError"))


def _models(args: argparse.Namespace) -> tuple[Any, str, Any, str]:
    """(LangChain model, its name, LlamaIndex LLM, its name); raises ValueError on a bad spec."""
    default = os.environ.get(MODEL_ENV) or None
    lc_spec, li_spec = args.langchain_model or default, args.llama_index_model or default
    if lc_spec:
        from langchain.chat_models import init_chat_model

        try:
            lc_model = init_chat_model(lc_spec)
        except Exception as exc:  # reported with the spec, then the demo stops
            raise ValueError(f"cannot use LangChain model {lc_spec!r}: {exc}") from exc
    else:
        from ._scripted import ScriptedChatModel

        lc_model = ScriptedChatModel()
    if li_spec:
        provider, _, name = li_spec.partition(":")
        if provider not in LLAMA_INDEX_PROVIDERS or not name:
            providers = ", ".join(LLAMA_INDEX_PROVIDERS)
            raise ValueError(
                f"--llama-index-model wants provider:model, provider one of {providers}; got {li_spec!r}"
            )
        module, cls, package = LLAMA_INDEX_PROVIDERS[provider]
        try:
            li_model = getattr(importlib.import_module(module), cls)(model=name)
        except ImportError as exc:
            raise ValueError(
                f"cannot use LlamaIndex model {li_spec!r}: pip install {package} ({exc})"
            ) from exc
        except Exception as exc:  # reported with the spec, then the demo stops
            raise ValueError(f"cannot use LlamaIndex model {li_spec!r}: {exc}") from exc
    else:
        from ._scripted import ScriptedLLM

        li_model = ScriptedLLM()
    return lc_model, lc_spec or "scripted", li_model, li_spec or "scripted"


def _database_problem(path: Path) -> str | None:
    """Why ``--db`` cannot be used, in one line, or ``None``: checked before the server
    starts so a bad path is one line on stderr, not a traceback from its thread."""
    import sqlite3

    from ..server.db import Database

    db = Database(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db.open()
    except (sqlite3.DatabaseError, OSError, RuntimeError) as exc:
        return f"cannot use {path} as a MemLayer database ({exc}); --db takes a database file"
    finally:
        db.close()
    return None


def build_parser(prog: str = "memlayer demo") -> argparse.ArgumentParser:
    """The demo's options and help (``memlayer demo --help``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG.format(providers=", ".join(LLAMA_INDEX_PROVIDERS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="keep the server's database in this SQLite file (default: a temporary one)",
    )
    parser.add_argument(
        "--langchain-model",
        metavar="PROVIDER:MODEL",
        help="a real chat model for the LangChain agent (default: scripted)",
    )
    parser.add_argument(
        "--llama-index-model",
        metavar="PROVIDER:MODEL",
        help="a real LLM for the LlamaIndex chat engine (default: scripted)",
    )
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the demo; returns the exit status (0 when every check passed).

    ``memlayer demo [options]`` calls this with the options.

    Args:
        argv: the options (what follows ``memlayer demo``); ``None`` means none.
        stdout: where to write (default: ``sys.stdout``).
    """
    return run(build_parser().parse_args(list(argv or [])), stdout=stdout)


def run(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run the demo with options parsed by :func:`build_parser`."""
    out = _Out(stdout or sys.stdout)
    started = time.perf_counter()
    try:
        from ..server import LocalMemLayerServer

        importlib.import_module("langchain.agents")
        importlib.import_module("llama_index.core")
    except ImportError as exc:
        hint = "pip install 'memlayer-integrations[all]'"
        print(
            f"memlayer demo needs the server, LangChain and LlamaIndex: {hint} ({exc})",
            file=sys.stderr,
        )
        return 1
    try:
        lc_model, lc_name, li_model, li_name = _models(args)
    except ValueError as exc:
        print(f"memlayer demo: {exc}", file=sys.stderr)
        return 2
    db_path = Path(args.db).expanduser() if args.db else None
    if db_path is not None:
        problem = _database_problem(db_path)
        if problem:
            print(f"memlayer demo: {problem}", file=sys.stderr)
            return 1
    checks: list[tuple[bool, str]] = []
    with LocalMemLayerServer(db_path=db_path) as server:
        key = server.create_key(plan="unlimited", name="demo")
        out.line(
            out.style("MemLayer demo: long-term memory for LangChain and LlamaIndex agents", "1")
        )
        out.line(
            f"server  {server.url} (embedded; database: {db_path or 'temporary, deleted at the end'})",
            2,
        )
        out.line(
            f"key     {mask_key(key)} (unlimited plan, made for this demo; keys are only ever shown masked)",
            2,
        )
        out.line(
            f"models  LangChain: {lc_name}, LlamaIndex: {li_name} (memlayer demo --help: use a real one)",
            2,
        )
        # In this process: no socket (server.url is the same server over HTTP).
        with MemLayerClient(api_key=key, base_url=server.in_process_url) as client:
            _langchain(out, client, lc_model, checks, scripted=lc_name == "scripted")
            _llama_index(out, client, li_model, checks, scripted=li_name == "scripted")
            _holdings(out, client)
            _usage(out, server, client, key)
        _bad_key(out, server.url, checks)
    out.title("Summary")
    for ok, text in checks:
        out.mark(ok, text, 2)
    if db_path is not None:
        out.line(f"The database is kept at {db_path}: memlayer keys list --db {db_path}", 2)
    out.line(f"Done in {time.perf_counter() - started:.1f} s.", 2)
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
