"""`prunebench ci affected` on a real git repository: which methods a change re-runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from prunebench.ci import affected
from prunebench.errors import PrunebenchError

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = Path("protocols/quickstart.yaml")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the quickstart protocol, a baselines/ module and a docs file, committed as `base`."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "protocols").mkdir(parents=True)
    shutil.copy(ROOT / QUICKSTART, repo / QUICKSTART)
    (repo / "baselines").mkdir()
    (repo / "baselines" / "magnitude.py").write_text("# global and layerwise magnitude\n")
    (repo / "baselines" / "snip.py").write_text("# snip\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "methods.md").write_text("methods\n")
    (repo / "prunebench").mkdir()
    (repo / "prunebench" / "engine.py").write_text("# the engine\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    return repo


def commit(repo: Path, path: str, text: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", f"change {path}")


EVERYONE = ["global_magnitude", "layerwise_magnitude", "random", "snip", "gradual_magnitude", "scratch_e"]


def test_a_changed_baseline_module_runs_the_methods_it_registers(repo: Path) -> None:
    commit(repo, "baselines/magnitude.py", "# changed\n")
    commit(repo, "docs/methods.md", "more docs\n")  # cannot change a number
    assert affected(QUICKSTART, "base", repo=repo).labels == ["global_magnitude", "layerwise_magnitude"]


def test_a_method_added_to_the_protocol_runs_alone(repo: Path) -> None:
    text = (repo / QUICKSTART).read_text() + "  - name: synflow\n"
    commit(repo, str(QUICKSTART), text)
    assert affected(QUICKSTART, "base", repo=repo).labels == ["synflow"]


def test_an_engine_change_or_a_new_setup_runs_every_method(repo: Path) -> None:
    commit(repo, "prunebench/engine.py", "# faster\n")
    assert affected(QUICKSTART, "base", repo=repo).labels == EVERYONE
    git(repo, "reset", "-q", "--hard", "base")
    text = (repo / QUICKSTART).read_text().replace("epochs: 10", "epochs: 11")
    commit(repo, str(QUICKSTART), text)
    chosen = affected(QUICKSTART, "base", repo=repo)
    assert chosen.labels == EVERYONE and "setup" in chosen.why


def test_analyses_are_not_part_of_the_setup(repo: Path) -> None:
    # The one identity rule: analyses never change what is trained, so only the changed method runs.
    text = (repo / QUICKSTART).read_text() + "analyses: {correlation: {enabled: true}}\n"
    commit(repo, str(QUICKSTART), text)
    commit(repo, "baselines/snip.py", "# changed\n")
    assert affected(QUICKSTART, "base", repo=repo).labels == ["snip"]


def test_a_changed_module_that_registers_nothing_the_protocol_runs_is_an_error(repo: Path) -> None:
    commit(repo, "baselines/mine.py", "# a new method nobody runs\n")
    with pytest.raises(PrunebenchError, match=r"register no method that protocols/quickstart.yaml runs"):
        affected(QUICKSTART, "base", repo=repo)


def test_an_unknown_ref_is_one_clear_error(repo: Path) -> None:
    with pytest.raises(PrunebenchError, match="git diff"):
        affected(QUICKSTART, "no-such-ref", repo=repo)


def test_the_command_prints_the_labels_and_writes_github_output(
    repo: Path, cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    commit(repo, "baselines/snip.py", "# changed\n")
    monkeypatch.chdir(repo)
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    result = cli("ci", "affected", "--base-ref", "base")
    assert result.code == 0, result.err
    assert result.out.strip() == "snip"
    assert output.read_text() == "labels=snip\n"


def test_a_change_to_the_references_fails_unless_a_maintainer_allows_it(
    repo: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    commit(repo, "baselines/snip.py", "# changed, results untouched\n")
    assert cli("ci", "references", "--base-ref", "base").code == 0
    commit(repo, "results/quickstart-x/snip/sparsity-0.5_seed-0.json", '{"test_top1": 1.0}\n')
    refused = cli("ci", "references", "--base-ref", "base")
    assert refused.code == 1 and "results/quickstart-x/snip/sparsity-0.5_seed-0.json" in refused.out
    assert "only a maintainer may change the references" in refused.err
    assert cli("ci", "references", "--base-ref", "base", "--allowed").code == 0


def test_the_submission_workflow_lints_guards_the_references_and_verifies() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "submit-method.yml").read_text())
    runs = " ".join(str(step.get("run", "")) for step in workflow["jobs"]["check"]["steps"])
    assert "prunebench lint-method --protocol protocols/quickstart.yaml baselines/" in runs
    assert "prunebench ci references" in runs and "update-references" in str(workflow)
    assert "--dense-from" in runs and "--save-models" in runs and "--verify" in runs
    dense = sorted((ROOT / "results").glob("quickstart-*/dense/*.pt"))
    assert len(dense) == len(yaml.safe_load((ROOT / QUICKSTART).read_text())["seeds"])  # shipped, one per seed
