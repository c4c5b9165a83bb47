"""Writing leaderboard rows to a file whose suffix picks the format: .csv, .md, .html."""
from __future__ import annotations

from pathlib import Path

from xrbench.results.html import leaderboard_html
from xrbench.results.leaderboard import subgroup_rows, subgroups_csv, subgroups_path, to_csv
from xrbench.results.markdown import leaderboard_markdown
from xrbench.results.merge import ResultsError
from xrbench.atomic import atomic_write_text

FORMATS = (".csv", ".md", ".html")


def check_suffix(path: Path) -> None:
    if Path(path).suffix.lower() not in FORMATS:
        raise ResultsError(f"{path}: unknown leaderboard format '{Path(path).suffix}'; the suffix of -o "
                           f"picks it: {', '.join(FORMATS)}")


def render(rows: list[dict[str, str]], suffix: str, title: str, records=None) -> str:
    if suffix == ".csv":
        return to_csv(rows)
    if suffix == ".md":
        return leaderboard_markdown(rows, title)
    return leaderboard_html(rows, title, records)


def write(rows: list[dict[str, str]], path: Path, title: str = "xrbench leaderboard", records=None) -> None:
    """Write one format; a CSV from ``records`` gets its subgroups CSV beside it (one per result
    attribute and group, leaderboard.subgroups_path)."""
    check_suffix(path)
    atomic_write_text(Path(path), render(rows, Path(path).suffix.lower(), title, records))
    if Path(path).suffix.lower() == ".csv" and records:
        sub = subgroup_rows(records)
        if sub:
            atomic_write_text(subgroups_path(Path(path)), subgroups_csv(sub))
