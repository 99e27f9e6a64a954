"""``memlayer_integrations.__all__`` names exactly the public API, and every name resolves."""

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
