"""The test run filters third-party deprecation noise by where it is raised, and never
hides a deprecation raised by this package."""

from __future__ import annotations

import warnings

import pytest
from pydantic.warnings import PydanticDeprecatedSince20


def _ignored(category: type[Warning], module: str, message: str = "x") -> bool:
    """Whether the filters active in this test ignore such a warning (first match wins)."""
    for action, msg, cat, mod, _lineno in warnings.filters:
        if not issubclass(category, cat):
            continue
        if msg is not None and not msg.match(message):
            continue
        if mod is not None and not mod.match(module):
            continue
        return action == "ignore"
    return False


@pytest.mark.parametrize(
    "module",
    ["memlayer_integrations", "memlayer_integrations.llama_index.memory", "tests.test_demo"],
)
@pytest.mark.parametrize("category", [DeprecationWarning, PydanticDeprecatedSince20])
def test_our_deprecations_are_never_filtered(module: str, category: type[Warning]) -> None:
    assert not _ignored(category, module)


def test_the_workflows_pydantic_noise_is_filtered() -> None:
    assert _ignored(PydanticDeprecatedSince20, "inspect")
