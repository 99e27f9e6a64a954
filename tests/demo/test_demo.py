"""``memlayer demo``: it runs offline, session 2 answers from session 1, the second user gets
nothing, and no key is ever printed in full."""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from llama_index.core.llms import ChatMessage

from memlayer_integrations import cli, demo
from memlayer_integrations.demo import _scripted
from memlayer_integrations.demo._scripted import ScriptedChatModel, ScriptedLLM

FULL_KEY = re.compile(r"ml_live_[A-Za-z0-9]{8,}")
ENTRY = "- [mem_" + "0" * 32 + "] "


@pytest.fixture(autouse=True)
def _no_demo_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(demo.MODEL_ENV, raising=False)


def run_demo(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = demo.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo") / "kept" / "memlayer.db"


@pytest.fixture(scope="module")
def demo_run(db_path: Path) -> tuple[int, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(demo.MODEL_ENV, raising=False)
        code, out, _ = run_demo("--db", str(db_path))
    return code, out


def section(output: str, title: str) -> str:
    start = output.index(title)
    end = (
        output.find("\n\n2. ", start + 1)
        if title.startswith("1.")
        else output.find("\n\n3. ", start)
    )
    return output[start:end]


def reply_to(block: str, user: str, text: str) -> tuple[list[str], str]:
    """The memories recalled for ``user``'s ``text`` in ``block``, and the agent's reply."""
    lines = block.splitlines()
    i = next(n for n, line in enumerate(lines) if line.strip() == f"{user} › {text}")
    recalled: list[str] = []
    for line in lines[i + 1 :]:
        if line.strip().startswith("agent ›"):
            return recalled, line.split("›", 1)[1].strip()
        if line.strip().startswith("✓"):
            recalled.append(line.strip()[1:].strip().strip('"'))
    raise AssertionError(f"no reply to {text!r}")


@pytest.mark.parametrize("title", ["1. LangChain", "2. LlamaIndex"])
def test_session_two_answers_from_session_one_and_bob_gets_nothing(
    demo_run: tuple[int, str], title: str
) -> None:
    code, output = demo_run
    assert code == 0
    block = section(output, title)
    recalled, answer = reply_to(block, "alice", "Which plan am I on?")
    assert recalled == [demo.FACT]
    assert "you're on the Pro plan" in answer
    recalled, answer = reply_to(block, "alice", "Where do I live?")
    assert demo.FACT in recalled and "you live in Oslo" in answer
    recalled, answer = reply_to(block, "bob", "Which plan am I on?")
    assert recalled == []
    assert "Pro" not in answer and "Oslo" not in answer
    assert "recalled: nothing" in block.split("bob › Which plan am I on?")[1]


def test_the_store_holds_alices_note_and_not_bobs(demo_run: tuple[int, str]) -> None:
    block = section(demo_run[1], "1. LangChain")
    store = block[block.index("the LangGraph store") :]
    assert "('alice', 'notes'): 1 item" in store and demo.FACT in store
    assert "('bob', 'notes'): 0 items" in store


def test_usage_quota_and_bad_key_are_shown(demo_run: tuple[int, str]) -> None:
    output = demo_run[1]
    usage = output[output.index("4. Usage and quota") : output.index("5. A bad key")]
    assert "plan unlimited" in usage
    assert "1 memory stored (of 500), 2 requests today (of 100)" in usage
    assert "X-RateLimit-Remaining: 98" in usage
    assert (
        "Authentication failed: invalid or missing API key (status 401, code invalid_api_key"
        in output
    )
    summary = output[output.index("Summary") :]
    assert summary.count("✓") == 7 and "✗" not in summary


def test_no_key_is_printed_in_full_and_no_colour_off_a_tty(demo_run: tuple[int, str]) -> None:
    output = demo_run[1]
    assert FULL_KEY.search(output) is None
    assert re.search(r"ml_live_[A-Za-z0-9]{4}…", output)  # the masked form is there
    assert "\x1b[" not in output


def test_db_option_keeps_the_database(
    demo_run: tuple[int, str], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo_run[0] == 0 and db_path.is_file()
    assert cli.main(["keys", "list", "--db", str(db_path)]) == 0
    names = [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]]
    assert sorted(names) == ["demo", "demo-free"]


def test_memlayer_demo_as_a_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    env["PYTHONIOENCODING"] = "ascii"  # a terminal that cannot show ✓ gets plain marks
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memlayer_integrations.cli",
            "demo",
            "--db",
            str(tmp_path / "demo.db"),
        ],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    output = proc.stdout.decode("ascii")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert (tmp_path / "demo.db").is_file()
    assert "agent > From what you told me before: you're on the Pro plan." in output
    assert "+ LangChain: bob recalled nothing of alice's" in output
    assert "Authentication failed: invalid or missing API key" in output
    assert "requests today (of 100)" in output
    assert FULL_KEY.search(output + proc.stderr.decode(errors="replace")) is None


@pytest.mark.parametrize(
    "missing",
    [
        (
            "fastapi",
            "uvicorn",
            "langchain",
            "langchain_core",
            "langgraph",
            "llama_index",
        ),  # the core alone
        ("fastapi", "uvicorn"),
        ("langchain", "langchain_core", "langgraph"),
        ("llama_index",),
    ],
)
def test_memlayer_demo_without_an_extra_names_the_install(missing: tuple[str, ...]) -> None:
    # A None entry in sys.modules makes importing that package fail, as if it were not installed.
    code = (
        f"import sys\nfor name in {missing!r}:\n    sys.modules[name] = None\n"
        "from memlayer_integrations import cli\nsys.exit(cli.main(['demo']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert "memlayer demo needs the server, LangChain and LlamaIndex" in proc.stderr
    assert "pip install 'memlayer-integrations[all]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_explains_real_models(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert (
        "--langchain-model" in text and "init_chat_model" in text and "--llama-index-model" in text
    )
    assert demo.MODEL_ENV in text and "--db PATH" in text


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--langchain-model", "nosuchprovider:x"],
            None,
            "cannot use LangChain model 'nosuchprovider:x'",
        ),
        (
            ["--llama-index-model", "openai:gpt-4o-mini"],
            None,
            "pip install llama-index-llms-openai",
        ),
        (["--llama-index-model", "gpt-4o-mini"], None, "provider:model"),
        ([], "nosuchprovider:x", "cannot use LangChain model 'nosuchprovider:x'"),
    ],
)
def test_a_model_that_cannot_be_used_stops_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, message: str
) -> None:
    if env:
        monkeypatch.setenv(demo.MODEL_ENV, env)
    code, out, err = run_demo(*argv)
    assert code == 2 and out == ""
    assert message in err


class _ConfiguredChatModel(ScriptedChatModel):
    spec: str = ""


class _ConfiguredLLM(ScriptedLLM):
    model: str


def test_a_configured_model_is_the_one_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain.chat_models

    specs: list[str] = []

    def init_chat_model(spec: str) -> _ConfiguredChatModel:
        specs.append(spec)
        return _ConfiguredChatModel(spec=spec)

    module = types.ModuleType("memlayer_demo_test_llms")
    module.ConfiguredLLM = _ConfiguredLLM  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(
        demo.LLAMA_INDEX_PROVIDERS, "acme", (module.__name__, "ConfiguredLLM", "acme-llms")
    )
    monkeypatch.setattr(langchain.chat_models, "init_chat_model", init_chat_model)
    code, output, _ = run_demo(
        "--langchain-model", "acme:chat-1", "--llama-index-model", "acme:llm-2"
    )
    assert code == 0 and specs == ["acme:chat-1"]
    assert "models  LangChain: acme:chat-1, LlamaIndex: acme:llm-2" in output
    # A real model's wording is its own: only what reached it is checked.
    summary = output[output.index("Summary") :]
    assert "the answer came from that memory" not in summary and summary.count("✓") == 5


def test_scripted_models_answer_from_what_reached_them() -> None:
    model = ScriptedChatModel()
    memory = SystemMessage(ENTRY + "I'm on the Gold plan, and I live in Lima")
    told = model.invoke([memory, HumanMessage("Which plan am I on?")])
    assert told.text == "From what you told me before: you're on the Gold plan."
    assert "don't know" in model.invoke([HumanMessage("Which plan am I on?")]).text
    llm = ScriptedLLM()
    said = ChatMessage(role="user", content=ENTRY + "My city is Lima\nWhat is my city?")
    assert llm.chat([said]).message.content == "From what you told me before: your city is Lima."
    assert (
        "don't know"
        in llm.chat([ChatMessage(role="user", content="What is my city?")]).message.content
    )
    assert doctest.testmod(_scripted).failed == 0
