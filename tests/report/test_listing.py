"""`prunebench ls`: every run directory under the folders given, with its jobs counted from its files."""

from __future__ import annotations

from pathlib import Path

from prunebench.report.listing import list_runs
from prunebench.testing import make_protocol, make_record, standard_records, write_run


def test_runs_are_listed_with_their_jobs_counted(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proto = make_protocol()
    records = standard_records(proto)  # 3 methods x 2 sparsities x 3 seeds
    records[0] = make_record(proto, "a", 0.9, 0, 0.9, status="failed", reasons=("it broke",), measured=False)
    records[1] = make_record(proto, "a", 0.5, 0, 0.9, status="violation", reasons=("over budget",))
    write_run(tmp_path / "r", proto, records[:-2])  # two jobs still to do
    other = make_protocol(**{"seeds: [0, 1, 2]": "seeds: [0]"})
    write_run(tmp_path / "r" / "nested", other, [])

    (full, empty) = sorted(list_runs([tmp_path / "r"]), key=lambda r: -r.written)
    assert (full.protocol, full.hash, full.expected, full.written, full.pending) == (proto.name, proto.hash, 18, 16, 2)
    assert (full.status["ok"], full.status["violation"], full.status["failed"]) == (14, 1, 1)
    assert full.first is not None and full.last is not None and full.first <= full.last
    assert (empty.expected, empty.written, empty.pending, empty.first) == (6, 0, 6, None)

    shown = cli("ls", tmp_path / "r")
    assert shown.code == 0
    row = next(line for line in shown.out.splitlines() if proto.hash[:10] in line and "16/18" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[1:8] == [proto.name, proto.hash[:10], "16/18", "14", "1", "1", "2"]
    assert cli("ls", tmp_path / "nowhere").code == 2
