"""Evaluation results as a markdown table (also what the terminal shows), JSON, and PNG plots.

`write_outputs` writes all three into a folder: `<stem>.md`, `<stem>.json` and one
`<stem>-<split>.png` per split (each metric against k, one line per strategy, drawn with Pillow).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmsearch.errors import ConfigError, UnknownNameError
from mmsearch.eval.metrics import METRICS
from mmsearch.eval.plot import Panel, line_chart
from mmsearch.eval.results import EvalResult, SplitResult
from mmsearch.files import writing

LABELS: dict[str, str] = {"map": "MAP", "ndcg": "nDCG", "recall": "Recall", "precision": "P", "coverage": "Cov"}
PLOT_METRICS: tuple[str, ...] = ("map", "ndcg", "recall", "precision")
SPLIT_TITLES: dict[str, str] = {
    "random": "random split (80/10/10 of the interactions)",
    "temporal": "temporal split (each user's latest interaction to test)",
    "cold-items": "cold-items split (80/10/10 of the items; ranking items CF never saw)",
}


def _check_metrics(metrics: Sequence[str]) -> None:
    for m in metrics:
        if m not in METRICS:
            raise UnknownNameError("metric", m, METRICS)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(
    split: SplitResult,
    *,
    metrics: Sequence[str] = METRICS,
    ks: Sequence[int] | None = None,
    digits: int = 4,
    bold_best: bool = True,
) -> str:
    """One row per strategy, one column per metric@k (metrics grouped), test scores.

    Args:
        split: the split's results.
        metrics: any of `map`, `ndcg`, `recall`, `precision`, `coverage`, in column order.
        ks: cut-offs shown (default: every k the run measured).
        digits: decimals.
        bold_best: bold each column's best value (coverage columns excepted).

    Raises:
        UnknownNameError: an unknown metric.
        ConfigError: a k the run did not measure.
    """
    _check_metrics(metrics)
    measured = sorted({int(key.split("@")[1]) for r in split.strategies for key in r.metrics})
    ks = list(ks) if ks is not None else measured
    missing = [k for k in ks if k not in measured]
    if missing:
        raise ConfigError(f"k {missing} not measured; the run measured k = {measured}")
    columns = [f"{m}@{k}" for m in metrics for k in ks]

    def finite(value: float) -> float:
        return value if math.isfinite(value) else -1.0

    best = {c: max((r.metrics.get(c, math.nan) for r in split.strategies), key=finite) for c in columns}
    header = "| Strategy | " + " | ".join(f"{LABELS[c.split('@')[0]]}@{c.split('@')[1]}" for c in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    lines = [header, rule]
    for r in split.strategies:
        cells = []
        for c in columns:
            value = r.metrics.get(c, math.nan)
            text = _fmt(value, digits)
            # Coverage is descriptive (random covers everything), so it is never bolded as "best".
            if bold_best and not c.startswith("coverage") and math.isfinite(value) and value > 0 and value == best[c]:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_split(split: SplitResult) -> list[str]:
    """Markdown lines under a split's table: sizes, the hybrids' fusion, the models' tuning, paired comparisons."""
    lines = [
        (
            f"{split.summary}. Ranked among {split.candidates} (minus each user's known interactions); "
            f"{split.users['test']} test users, {split.users['validation']} validation users."
        ),
    ]
    for r in split.strategies:
        if r.fusion is None:
            continue
        weights = ", ".join(f"{k}={v:g}" for k, v in r.fusion["weights"].items())
        scheme = r.fusion["method"] + (f"-{r.fusion['normalization']}" if r.fusion.get("normalization") else "")
        depth = r.fusion.get("depth")
        scheme += f" over each leg's top {depth} candidates" if depth else " over all candidates"
        how = "tuned on validation" if r.fusion.get("tuned") else "fixed (not tuned)"
        val = r.fusion.get(f"validation_{split.tune_metric}")
        lines.append(
            f"- `{r.name}`: {scheme}, weights {weights} ({how}; validation {split.tune_metric} {_fmt(val, 4)})."
        )
    for tuning in split.model_tuning.values():
        lines.append(f"- tuning {tuning.summary()}.")
    for c in split.comparisons:
        lines.append(
            f"- `{c.hybrid}` vs `{c.versus}` on test {c.metric}: {c.hybrid_value:.4f} vs {c.versus_value:.4f}, "
            f"difference {c.difference:+.4f} (95% paired bootstrap CI {c.ci95[0]:+.4f} to {c.ci95[1]:+.4f}; "
            f"{c.users_better} users better, {c.users_worse} worse)."
        )
    return lines


def format_report(result: EvalResult, *, metrics: Sequence[str] = METRICS, digits: int = 4) -> str:
    """The whole run as markdown: a heading, table and notes per split, then the timings."""
    data = result.data
    parts = []
    name = data.get("dataset") or "evaluation"
    parts.append(f"## {name}: {data['users']} users, {data['items']} items, {data['interactions']} interactions")
    for split in result.splits:
        parts.append(f"### {SPLIT_TITLES.get(split.kind, split.kind)}")
        parts.append(markdown_table(split, metrics=metrics, digits=digits))
        parts.append("\n".join(describe_split(split)))
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    parts.append(f"Timings: {timing}.")
    return "\n\n".join(parts) + "\n"


def to_json(result: EvalResult) -> str:
    """The run as JSON (NaN written as null)."""
    return json.dumps(_finite(result.to_dict()), indent=2)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def plot_split(split: SplitResult, path: str | Path, *, metrics: Sequence[str] = PLOT_METRICS, title: str = "") -> Path:
    """A PNG with one panel per metric (against k), one line per strategy (test scores).

    Raises:
        UnknownNameError: an unknown metric.
    """
    _check_metrics(metrics)
    ks = sorted({int(key.split("@")[1]) for r in split.strategies for key in r.metrics})
    panels = [
        Panel(
            f"{LABELS[m]}@k" if m != "precision" else "Precision@k",
            ks,
            {r.name: [r.metrics.get(f"{m}@{k}", math.nan) for k in ks] for r in split.strategies},
        )
        for m in metrics
    ]
    return line_chart(panels, path, title=title or SPLIT_TITLES.get(split.kind, split.kind))


def write_outputs(result: EvalResult, out_dir: str | Path, *, stem: str = "eval") -> dict[str, Path]:
    """Write `<stem>.md`, `<stem>.json` and `<stem>-<split>.png` per split into `out_dir` (created).

    Returns:
        {"markdown": path, "json": path, "plot:<split>": path, ...}.

    Raises:
        ConfigError: the folder or a file in it cannot be written.
    """
    with writing(out_dir, "evaluation output folder"):
        return _write_outputs(result, Path(out_dir), stem)


def _write_outputs(result: EvalResult, out: Path, stem: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["markdown"] = out / f"{stem}.md"
    paths["markdown"].write_text(format_report(result), encoding="utf-8")
    paths["json"] = out / f"{stem}.json"
    paths["json"].write_text(to_json(result) + "\n", encoding="utf-8")
    for split in result.splits:
        name = result.data.get("dataset")
        title = f"{name}: {SPLIT_TITLES.get(split.kind, split.kind)}" if name else ""
        paths[f"plot:{split.kind}"] = plot_split(split, out / f"{stem}-{split.kind}.png", title=title)
    return paths


__all__ = [
    "LABELS",
    "PLOT_METRICS",
    "describe_split",
    "format_report",
    "markdown_table",
    "plot_split",
    "to_json",
    "write_outputs",
]
