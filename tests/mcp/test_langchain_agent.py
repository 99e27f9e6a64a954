"""A LangChain agent (scripted model) using ``memlayer mcp`` through langchain-mcp-adapters,
the way LangChain users wire in an MCP server."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools

from ..langchain._support import ScriptedChatModel
from ._support import COMMAND, REPO, scope_args, server_env


def _call(name: str, args: dict[str, object], call_id: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


async def test_a_langchain_agent_remembers_and_recalls_through_mcp(
    base_url: str, api_key: str
) -> None:
    client = MultiServerMCPClient(
        {
            "memlayer": {
                "transport": "stdio",
                "command": COMMAND[0],
                "args": [*COMMAND[1:], *scope_args("alice")],
                "env": server_env(api_key, base_url),
                "cwd": str(REPO),
            }
        }
    )
    model = ScriptedChatModel(
        responses=[
            _call("remember", {"text": "The user is allergic to peanuts"}, "c1"),
            AIMessage("Noted."),
            _call("recall", {"query": "allergic"}, "c2"),
            AIMessage("You are allergic to peanuts."),
            _call("forget", {"memory_id": "mem_" + "0" * 32}, "c3"),
            AIMessage("Nothing to forget."),
        ]
    )
    async with client.session("memlayer") as session:
        tools = await load_mcp_tools(session)
        assert sorted(t.name for t in tools) == ["forget", "list_memories", "recall", "remember"]
        agent = create_agent(model, tools=tools)
        await agent.ainvoke({"messages": [HumanMessage("I'm allergic to peanuts")]})
        # A new conversation: only long-term memory carries the fact over.
        await agent.ainvoke({"messages": [HumanMessage("What am I allergic to?")]})
        await agent.ainvoke({"messages": [HumanMessage("Forget mem_000...")]})

    remembered, recalled, refused = (model.prompts[i][-1] for i in (1, 3, 5))
    assert isinstance(remembered, ToolMessage) and "Remembered [mem_" in remembered.text
    assert isinstance(recalled, ToolMessage)
    assert recalled.text.endswith("] The user is allergic to peanuts")
    # An MCP error result reaches the model as the tool's answer; the run goes on.
    assert isinstance(refused, ToolMessage) and refused.status == "error"
    assert "No memory with id" in refused.text
