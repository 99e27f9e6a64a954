"""The web console in a real browser: sign in, usage, browsing, recall, edit, forget, and
what a key may see. Every check reads the page as a person would, then asks the server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Dialog, Page, Request, Route, expect

from memlayer_integrations import MemLayerClient, NotFoundError

CONSOLE = "/console"


def sign_in(page: Page, key: str) -> None:
    page.goto(CONSOLE)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def signed_in(page: Page, key: str) -> None:
    sign_in(page, key)
    expect(page.locator("#main-view")).to_be_visible()


def open_scope(page: Page, user: str, agent: str) -> None:
    page.locator(f'button.scope[data-user="{user}"][data-agent="{agent}"]').click()
    expect(page.locator("#scope-title")).to_have_text(f"{user} · {agent}")


def answer_dialogs(page: Page, accept: bool) -> list[str]:
    """Answer every confirmation with ``accept``; returns their messages as they come."""
    messages: list[str] = []

    def handle(dialog: Dialog) -> None:
        messages.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", handle)
    return messages


def test_sign_in_shows_usage_and_the_users_and_agents(page, account, shots):
    key, client = account
    client.remember_many(
        ["likes tea", "lives in Oslo", "has two cats"], user_id="alice", agent_id="tutor"
    )
    client.remember("prefers mornings", user_id="alice", agent_id="coach")
    client.remember("speaks French", user_id="bob", agent_id="tutor")
    page.goto(CONSOLE)
    shots("sign-in")
    sign_in(page, key)
    expect(page.locator("#usage-plan")).to_have_text("free plan")
    expect(page.locator("#usage-memories")).to_have_text("memories 5 / 500")
    # Three writes and the console's usage request; its scopes request follows.
    expect(page.locator("#usage-requests")).to_have_text(re.compile(r"requests today [45] / 100"))
    expect(page.locator(".user")).to_have_text(["alice", "bob"])
    expect(page.locator("button.scope")).to_have_text(["coach (1)", "tutor (3)", "tutor (1)"])
    shots("signed-in")


def test_a_scope_is_browsed_page_by_page(page, account, shots):
    key, client = account
    contents = [f"fact number {i:02d}" for i in range(45)]
    client.remember_many(contents, user_id="alice", agent_id="tutor")
    signed_in(page, key)
    open_scope(page, "alice", "tutor")
    memories = page.locator("#memory-list .memory .content")
    expect(memories).to_have_count(20)
    page.get_by_role("button", name="Load more").click()
    expect(memories).to_have_count(40)
    page.get_by_role("button", name="Load more").click()
    expect(memories).to_have_count(45)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    assert memories.all_text_contents() == contents
    shots("scope")


def test_search_puts_the_expected_memory_first_and_says_why(page, account, shots):
    key, client = account
    client.remember_many(
        [
            "I started yoga last month",
            "How long should I hold the warrior pose?",
            "Between 30 and 60 seconds, breathing slowly",
        ],
        user_id="alice",
        agent_id="coach",
        session_id="s1",
    )
    client.remember(
        "The photographer asked me to strike a pose by the lake", user_id="alice", agent_id="coach"
    )
    signed_in(page, key)
    open_scope(page, "alice", "coach")
    page.get_by_role("searchbox").fill("how long to hold the warrior pose")
    page.get_by_role("button", name="Search").click()
    hits = page.locator("#result-list .hit")
    expect(hits.first.locator(".content")).to_have_text("How long should I hold the warrior pose?")
    expect(hits.first.locator(".why")).to_have_text("matched words: long, hold, warrior, pose")
    # The scores are numbers a person can compare, best first.
    shown = hits.locator(".score").all_text_contents()
    assert all(re.fullmatch(r"\d+\.\d{3}|<0\.001", s) for s in shown), shown
    scores = [0.0 if s == "<0.001" else float(s) for s in shown]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    answer = hits.filter(has_text="Between 30 and 60 seconds")
    expect(answer.locator(".why")).to_have_text(
        "next turn to “How long should I hold the warrior pose?” in its conversation"
    )
    shots("search")


def test_a_memory_is_edited_in_place(page, account, shots):
    key, client = account
    memory = client.remember(
        "likes tea", user_id="alice", agent_id="tutor", metadata={"source": "chat"}
    )
    signed_in(page, key)
    open_scope(page, "alice", "tutor")
    item = page.locator(f'#memory-list .memory[data-id="{memory.id}"]')
    item.get_by_role("button", name="Edit").click()
    item.get_by_label("Metadata (a JSON object)").fill("{not json")
    item.get_by_role("button", name="Save").click()
    expect(item.locator(".edit-error")).to_contain_text("metadata is not valid JSON")
    assert client.get(memory.id).metadata == {"source": "chat"}
    item.get_by_label("Content").fill("likes green tea, no sugar")
    item.get_by_label("Metadata (a JSON object)").fill('{"source": "console", "checked": true}')
    shots("edit")
    item.get_by_role("button", name="Save").click()
    expect(item.locator(".content")).to_have_text("likes green tea, no sugar")
    expect(item.locator(".editor")).to_be_hidden()
    stored = client.get(memory.id)
    assert (stored.content, stored.metadata) == (
        "likes green tea, no sugar",
        {"source": "console", "checked": True},
    )


def test_an_edit_the_server_refuses_shows_its_message(page, account):
    key, client = account
    memory = client.remember("likes tea", user_id="alice", agent_id="tutor")
    signed_in(page, key)
    open_scope(page, "alice", "tutor")
    item = page.locator(f'#memory-list .memory[data-id="{memory.id}"]')
    item.get_by_role("button", name="Edit").click()
    item.get_by_label("Content").fill("   ")
    item.get_by_role("button", name="Save").click()
    expect(item.locator(".edit-error")).to_contain_text("content")
    assert client.get(memory.id).content == "likes tea"


def test_forgetting_asks_first_then_removes_one_memory(page, account):
    key, client = account
    keep, drop = client.remember_many(
        ["likes tea", "lives in Oslo"], user_id="alice", agent_id="tutor"
    )
    signed_in(page, key)
    open_scope(page, "alice", "tutor")
    item = page.locator(f'#memory-list .memory[data-id="{drop.id}"]')

    page.once("dialog", lambda dialog: dialog.dismiss())
    item.get_by_role("button", name="Forget").click()
    expect(item).to_be_visible()
    assert client.get(drop.id).content == "lives in Oslo"

    messages = answer_dialogs(page, accept=True)
    item.get_by_role("button", name="Forget").click()
    expect(item).to_have_count(0)
    assert messages and "lives in Oslo" in messages[0]
    with pytest.raises(NotFoundError):
        client.get(drop.id)
    assert client.get(keep.id).content == "likes tea"
    expect(page.locator("#usage-memories")).to_have_text("memories 1 / 500")
    expect(page.locator("button.scope")).to_have_text(["tutor (1)"])


def test_forgetting_a_whole_scope_leaves_the_others(page, account):
    key, client = account
    client.remember_many(["likes tea", "lives in Oslo"], user_id="alice", agent_id="tutor")
    client.remember("prefers mornings", user_id="alice", agent_id="coach")
    signed_in(page, key)
    open_scope(page, "alice", "tutor")
    messages = answer_dialogs(page, accept=True)
    page.get_by_role("button", name="Forget all of this scope").click()
    expect(page.locator("button.scope")).to_have_text(["coach (1)"])
    assert "alice · tutor" in messages[0]
    assert [s.agent_id for s in client.list_scopes()] == ["coach"]
    expect(page.locator("#usage-memories")).to_have_text("memories 1 / 500")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("ml_live_" + "0" * 32, "invalid or missing API key"),
        ("not-a-key", "wrong key format"),
    ],
)
def test_a_wrong_key_is_refused_with_the_servers_message(page, key, message):
    sign_in(page, key)
    expect(page.locator("#sign-in-error")).to_have_text(message)
    expect(page.locator("#main-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_revoked_key_is_refused(page, local_server):
    key = local_server.create_key(plan="free")
    local_server.revoke_key(key)
    sign_in(page, key)
    expect(page.locator("#sign-in-error")).to_have_text("invalid or missing API key")


def test_another_accounts_memories_are_never_visible(page, account, local_server):
    _, client = account
    client.remember("alice's secret plan", user_id="alice", agent_id="tutor")
    other = local_server.create_key(plan="free")
    with MemLayerClient(api_key=other, base_url=local_server.url) as mine:
        mine.remember("my own note", user_id="carol", agent_id="bot")
    signed_in(page, other)
    expect(page.locator(".user")).to_have_text(["carol"])
    open_scope(page, "carol", "bot")
    page.get_by_role("searchbox").fill("secret plan")
    page.get_by_role("combobox").select_option("all")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#no-results")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("alice")
    expect(page.locator("#usage-memories")).to_have_text("memories 1 / 500")


def test_the_key_stays_in_the_header_and_the_tab(page, account):
    key, client = account
    client.remember("likes tea", user_id="alice", agent_id="tutor")
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    signed_in(page, key)
    open_scope(page, "alice", "tutor")
    api = [r for r in requests if "/v1/" in r.url]
    assert api and all(r.headers.get("x-api-key") == key for r in api)
    assert all(key not in r.url for r in requests)
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    # A reload keeps the tab signed in; signing out forgets the key.
    page.reload()
    expect(page.locator("#main-view")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in-view")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert key not in page.content()


def test_the_api_docs_render_from_this_server_alone(page, local_server):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("MemLayer")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert requests and all(url.startswith(local_server.url + "/") for url in requests), requests


def test_reasons_a_newer_server_adds_are_shown_too(page, account):
    key, client = account
    client.remember("likes green tea", user_id="alice", agent_id="tutor")

    def add_similarity(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        for hit in body["results"]:
            hit["why"]["similarity"] = 0.8312
        route.fulfill(response=answer, json=body)

    page.route("**/v1/memories/search", add_similarity)
    signed_in(page, key)
    open_scope(page, "alice", "tutor")
    page.get_by_role("searchbox").fill("green tea")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#result-list .hit .why")).to_have_text(
        "matched words: green, tea; similarity 0.831"
    )
