"""Comparing results: records grouped by protocol setup, one leaderboard per group, and the boards of each
protocol's retraining variants beside its own."""

from __future__ import annotations

import difflib
import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence

from prunebench.errors import ResultsError
from prunebench.report.audit import Entry, same_target, target_of
from prunebench.report.between import add_between_variants
from prunebench.report.board import Comparison, Leaderboard, build_board
from prunebench.report.evaluations import SHOWABLE, evaluation_row
from prunebench.report.evaluations import dense_row as evaluation_dense_row
from prunebench.report.filters import passes_filters
from prunebench.report.load import ProtocolIndex, ProtocolInfo, describe_differences
from prunebench.report.sanity import add_sanity, sanity_of
from prunebench.report.variants import group_plan, variant_boards
from prunebench.results import Loaded
from prunebench.results.store import no_gc


def compare(
    loaded: Sequence[Loaded],
    *,
    mix_protocols: bool = False,
    protocols: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    index: ProtocolIndex | None = None,
    against: str | None = None,
    show: Sequence[str] = (),
) -> Comparison:
    """Group the records by protocol and build one leaderboard per group.

    Results of one protocol name but another setup (another hash, beyond the method list) are
    never ranked together: each gets its own table and a notice says how the protocols differ.
    With mix_protocols they are ranked together and the table is marked. Every board of a protocol's
    retraining variants is compared with its own recipe's board (or `against`, a variant's), paired by seed
    (prunebench.report.between). `show`: the optional evaluations (robustness, calibration, forgetting) to put
    beside each protocol's own board (prunebench.report.evaluations).
    """
    unknown = [s for s in show if s not in SHOWABLE]
    if unknown:
        raise ResultsError(f"--show {unknown[0]!r}: not an evaluation (known: {', '.join(SHOWABLE)})")
    with no_gc():
        return _compare(
            loaded, mix_protocols, protocols, methods, sparsities, index or ProtocolIndex(), against, tuple(show)
        )


def _compare(
    loaded: Sequence[Loaded],
    mix_protocols: bool,
    protocols: Sequence[str] | None,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
    index: ProtocolIndex,
    against: str | None = None,
    show: tuple[str, ...] = (),
) -> Comparison:
    check_filters(loaded, protocols, methods, sparsities)
    selected = _filtered_entries(loaded, protocols, methods, sparsities, index)
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    infos_by_name: dict[str, dict[str, ProtocolInfo]] = defaultdict(dict)
    for entry in selected:  # a second pass: every protocol.json has been seen by now
        entry.info = index.resolve(entry.info)
        name = entry.record.protocol.name
        infos_by_name[name].setdefault(entry.info.setup_hash, entry.info)
        groups[(name, "*" if mix_protocols else entry.info.setup_hash)].append(entry)

    notices = []
    for name, setups in sorted(infos_by_name.items()):
        if len(setups) < 2:
            continue
        infos = list(setups.values())
        counts = Counter(e.info.setup_hash for (n, _), es in groups.items() if n == name for e in es)
        listing = ", ".join(f"{i.setup_hash[:10]} ({counts[i.setup_hash]} results)" for i in infos)
        how = "; ".join(
            f"{a.setup_hash[:10]} vs {b.setup_hash[:10]}: {describe_differences(a, b)}"
            for a, b in itertools.pairwise(infos)
        )
        if mix_protocols:
            notices.append(f"protocol {name!r}: setups {listing} are ranked together on request; they differ in {how}")
        else:
            notices.append(
                f"protocol {name!r}: results come from {len(infos)} different setups ({listing}); they are not ranked "
                f"together but shown as separate tables. They differ in {how}. --mix-protocols ranks them together "
                "in a table marked as mixed."
            )

    boards = []
    for (name, setup), group in sorted(groups.items()):
        mixed = False
        if setup == "*":
            setups = Counter(e.info.setup_hash for e in group)
            setup, mixed = (setups.most_common(1)[0][0], False) if len(setups) == 1 else ("mixed", True)
        # Results of retraining variants get boards of their own; the protocol's board is built as ever.
        entries = [e for e in group if e.record.variant is None]
        group_boards = [build_board(name, setup, entries, mixed, methods, sparsities)] if entries else []
        if show and group_boards:
            attach_evaluations(group_boards[0], entries, show)
        if len(entries) < len(group) or any(e.info.content and "variants" in e.info.content for e in group):
            more_boards, more_notices = variant_boards(name, setup, group, mixed, methods, sparsities)
            group_boards.extend(more_boards)
            notices.extend(more_notices)
            add_between_variants(group_boards, against)
            add_sanity(group_boards, group_plan(group), sanity_of(group))
        boards.extend(group_boards)
    if against is not None and not any(r.vs_recipe for b in boards for r in b.rows):
        variants = sorted({b.variant for b in boards if b.variant is not None})
        raise ResultsError(
            f"--against {against}: no retraining variant of that name among the results (variants: "
            f"{', '.join(variants) or 'none'})"
        )
    return Comparison(boards=boards, notices=notices, files=len(loaded))


def attach_evaluations(board: Leaderboard, entries: Sequence[Entry], show: tuple[str, ...]) -> None:
    """A board's optional evaluations, one per row, from the fair records of its rows (audited by now)."""
    clean: dict[tuple[str, float], list[Entry]] = defaultdict(list)
    for e in entries:
        if e.clean and e.target is not None:
            clean[(e.label, e.target)].append(e)
    board.shown = show
    board.evaluations = [
        evaluation_dense_row([e.record for es in clean.values() for e in es])
        if r.kind == "dense"
        else evaluation_row(
            r.method, r.sparsity_target, [e.record for e in clean.get((r.method, r.sparsity_target), [])]
        )
        for r in board.rows
    ]


def _filtered_entries(
    loaded: Sequence[Loaded],
    protocols: Sequence[str] | None,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
    index: ProtocolIndex,
) -> list[Entry]:
    """The entries of the records the filters keep."""
    selected: list[Entry] = []
    for item in loaded:
        r = item.record
        if not passes_filters(r, protocols=protocols, methods=methods):
            continue
        # The index sees the protocol.json of a record --sparsities leaves out too: it may place a copied record.
        info = index.info(r.protocol, item.path)
        if passes_filters(r, sparsities=sparsities):
            selected.append(Entry(item.path, r, info, target_of(r)))
    return selected


def check_filters(
    loaded: Sequence[Loaded],
    protocols: Sequence[str] | None,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
) -> None:
    """A filter value that no result has is an error naming the nearest one that exists (a typo, not an empty
    board)."""
    have = {
        "--protocol": sorted({x.record.protocol.name for x in loaded}),
        "--methods": sorted({x.record.method.label for x in loaded}),
    }
    for option, wanted in (("--protocol", protocols), ("--methods", methods)):
        for value in wanted or ():
            if value not in have[option]:
                close = difflib.get_close_matches(value, have[option], n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ResultsError(
                    f"{option} {value!r}: no result has it ({hint}the results have: {', '.join(have[option])})"
                )
    targets = sorted({t for t in (target_of(x.record) for x in loaded) if t is not None})
    for value in sparsities or ():
        if not any(same_target(value, t) for t in targets):
            raise ResultsError(
                f"--sparsities {value:g}: no result has it (the results have: {', '.join(f'{t:g}' for t in targets)})"
            )
