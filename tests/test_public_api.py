"""``memlayer_integrations.__all__`` names exactly the public API, and every name resolves."""

import importlib

import pytest

import memlayer_integrations


def test_all_names_resolve():
    for name in memlayer_integrations.__all__:
        assert getattr(memlayer_integrations, name) is not None, name


def test_all_is_exactly_what_is_public():
    public = {
        name
        for name, value in vars(memlayer_integrations).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("memlayer_integrations")
    }
    exported = set(memlayer_integrations.__all__)
    assert len(exported) == len(memlayer_integrations.__all__), "a name is listed twice"
    assert public <= exported, f"public but not in __all__: {sorted(public - exported)}"
    assert exported - {"__version__", "DEFAULT_BASE_URL"} == public


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from memlayer_integrations import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(memlayer_integrations.__all__)


#: What each package promises. A name added or removed here is a change of the public API:
#: say so in CHANGELOG.md.
EXPECTED_ALL = {
    "memlayer_integrations": [
        "DEFAULT_BASE_URL",
        "APIConnectionError",
        "APIResponseValidationError",
        "APIStatusError",
        "APITimeoutError",
        "AsyncMemLayerClient",
        "AuthenticationError",
        "BadRequestError",
        "ConflictError",
        "InternalServerError",
        "MemLayerClient",
        "MemLayerError",
        "MemLayerScopeError",
        "Memory",
        "MemoryLimitError",
        "NotFoundError",
        "Op",
        "PermissionDeniedError",
        "RateLimitError",
        "RateLimitInfo",
        "RecalledMemory",
        "RequestBudgetError",
        "Scope",
        "UnprocessableEntityError",
        "Usage",
        "__version__",
    ],
    "memlayer_integrations.langchain": [
        "MemLayerChatMessageHistory",
        "MemLayerMiddleware",
        "MemLayerRetriever",
        "MemLayerScopeError",
        "MemLayerStore",
        "MemLayerToolkit",
        "memlayer_namespace",
    ],
    "memlayer_integrations.llama_index": [
        "MemLayerChatStore",
        "MemLayerMemory",
        "MemLayerMemoryBlock",
        "MemLayerRetriever",
        "MemLayerScopeError",
        "MemLayerToolSpec",
        "stop_on_denied",
    ],
    "memlayer_integrations.server": [
        "DEFAULT_PLANS",
        "LocalMemLayerServer",
        "Plan",
        "ServerSettings",
        "create_app",
        "render_openapi",
    ],
}


@pytest.mark.parametrize("package", sorted(EXPECTED_ALL))
def test_all_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(EXPECTED_ALL[package])
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name}"
