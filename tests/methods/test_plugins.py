"""Method plugins from installed distributions: a broken one is skipped with a warning naming it, and fails
only a protocol that uses it; two plugins registering one name is an error naming both. The distributions
are real `.dist-info` folders on sys.path, as pip leaves them."""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from prunebench.errors import MethodError
from prunebench.methods import PluginWarning, load_method, registered_methods

GOOD = textwrap.dedent(
    """\
    from prunebench.methods import Method, Taxonomy

    class Good(Method):
        name = "plugin_good"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="one_shot", retraining="fine_tune")
    """
)


def install(site: Path, dist: str, module: str, code: str, entry_points: dict[str, str]) -> None:
    """A distribution as pip installs it: the module and a dist-info folder with its entry points."""
    (site / f"{module}.py").write_text(code)
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[prunebench.methods]\n{lines}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("pb_plugin_good", "pb_plugin_broken", "pb_plugin_twin"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_a_broken_plugin_is_skipped_and_fails_only_where_it_is_used(site: Path) -> None:
    install(site, "good_plugin", "pb_plugin_good", GOOD, {"plugin_good": "pb_plugin_good:Good"})
    install(
        site,
        "broken_plugin",
        "pb_plugin_broken",
        "raise ImportError('no such wheel')\n",
        {"plugin_bad": "pb_plugin_broken:X"},
    )
    with pytest.warns(PluginWarning, match=r"plugin_bad = pb_plugin_broken:X failed to load: ImportError: no such"):
        found = registered_methods()
    assert "plugin_good" in found and "global_magnitude" in found and "plugin_bad" not in found
    assert load_method("plugin_good").cls.name == "plugin_good"
    with pytest.raises(MethodError, match=r"method 'plugin_bad' cannot be used: .*no such wheel"):
        load_method("plugin_bad")


def test_two_plugins_with_one_name_is_an_error_naming_both(site: Path) -> None:
    install(site, "good_plugin", "pb_plugin_good", GOOD, {"plugin_good": "pb_plugin_good:Good"})
    install(site, "twin_plugin", "pb_plugin_twin", GOOD, {"plugin_good": "pb_plugin_twin:Good"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # warned once per process; the error is what counts here
        with pytest.raises(MethodError, match=r"pb_plugin_good:Good and pb_plugin_twin:Good"):
            load_method("plugin_good")


def test_a_broken_plugin_does_not_take_the_cli_down(site: Path, cli) -> None:
    install(site, "broken_plugin", "pb_plugin_broken", "1/0\n", {"plugin_bad": "pb_plugin_broken:X"})
    result = cli("methods")
    assert result.code == 0 and "global_magnitude" in result.out
    assert "warning: method plugin skipped: entry point plugin_bad" in result.err.replace("\n", "")
