"""Parity report files: a readable table, markdown, and a PNG plot of int8 versus float scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edge_lstm_device.bundle.files import atomic_write_bytes

from edge_lstm.evaluate.parity import ParityReport

REPORT_MD = "parity_report.md"
REPORT_PNG = "parity_scores.png"
COLUMNS = ("backend", "accuracy", "Δacc (pts)", "labels agree", "max |Δp|", "mean |Δp|", "order/batch", "verdict")


def _share(value: float | None, scale: float = 1.0, spec: str = ".4f") -> str:
    return "-" if value is None else format(value * scale, spec)


def _rows(report: ParityReport) -> list[tuple[str, ...]]:
    rows = [(f"{report.reference_name} (reference)", _share(report.reference_accuracy), "-", "-", "-", "-", "-", "-")]
    for b in report.backends:
        dependence = ("order-dependent " if b.order_dependent else "") + (
            "batch-dependent" + (" (expected)" if b.batch_dependence_expected else "") if b.batch_dependent else "")
        rows.append((b.name, _share(b.accuracy), _share(b.accuracy_change, 100, "+.2f"), f"{b.label_agreement:.2%}",
                     f"{b.max_abs_diff:.2g}", f"{b.mean_abs_diff:.2g}", dependence.strip() or "independent",
                     "pass" if b.passed else "FAIL"))
    return rows


def table(report: ParityReport) -> str:
    rows = [COLUMNS, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for b in report.backends:
        lines += [f"{b.name}: {failure}" for failure in b.failures]
        if b.tied_flips and b.precision != "int8" and b.passed:
            lines.append(f"{b.name}: {b.tied_flips} label(s) differ where the reference is tied within max |Δp| "
                         "(counted as agreeing)")
    verdict = "all thresholds met" if report.passed else "THRESHOLDS FAILED"
    if report.classes:
        lines.append(f"multi-class: {report.judged_on}")
        lines += [f"{b.name}: max |Δp| per class: {_plain(b.max_abs_diff_per_class)}" for b in report.backends]
    lines.append(f"{report.reviews} reviews from {report.source}: {verdict}")
    return "\n".join(lines)


def _plain(per_class: dict[str, float]) -> str:
    return ", ".join(f"{name} {d:.2g}" for name, d in per_class.items())


def markdown(report: ParityReport) -> str:
    out = [f"# Parity report\n\n{report.reviews} reviews from {report.source}. "
           f"Verdict: **{'pass' if report.passed else 'FAIL'}**.\n",
           "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    t = report.thresholds
    out.append(f"\nThresholds: float labels ≥ {t.float_min_agreement:.2%} (a review the reference holds within "
               f"2 × {t.float_max_abs_diff:g} of a tie counts as agreeing) and max |Δp| ≤ {t.float_max_abs_diff:g}; "
               f"int8 labels ≥ {t.int8_min_agreement:.2%} and |Δaccuracy| ≤ {t.int8_max_accuracy_change * 100:g} points.\n")
    if report.classes:
        out.append(f"Multi-class: {report.judged_on}.\n")
    for b in report.backends:
        out.append(f"\n## {b.name}: reviews that differ most\n\n| id | label | reference | score | |Δp| |\n|---|---|---|---|---|")
        out += [f"| {d['id']} | {d['label']} | {d['reference']:.4f}{' (' + d['class'] + ')' if 'class' in d else ''} | "
                f"{d['score']:.4f} | {d['abs_diff']:.3g} |" for d in b.most_different]
        if b.max_abs_diff_per_class:
            out.append(f"\nmax |Δp| per class: {_plain(b.max_abs_diff_per_class)}")
        out += [f"\n- FAIL: {f}" for f in b.failures]
    return "\n".join(out) + f"\n\n![int8 versus float scores]({REPORT_PNG})\n"


def plot(report: ParityReport, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = report.scores[report.reference_name]
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    for b in report.backends:
        ax.scatter(np.ravel(reference), np.ravel(report.scores[b.name]), s=6, alpha=0.6,
                   label=f"{b.name} ({b.label_agreement:.2%} agree)")
    ax.set(xlabel="float Keras probability (reference)", ylabel="artifact probability",
           title=f"Parity on {report.reviews} reviews", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


FAMILIES_MARK = "<!-- kernel families: written by scripts/kernel_families.py -->"


def with_families(text: str, families: str) -> str:
    """``text`` (a parity report) whose kernel-families section is ``families`` (from
    ``FAMILIES_MARK`` to the end; added at the end when there is none)."""
    head = text.split(FAMILIES_MARK)[0].rstrip("\n")
    return f"{head}\n\n{FAMILIES_MARK}\n{families.strip()}\n" if families.strip() else head + "\n"


def families_section(path: Path) -> str:
    """The kernel-families section of an existing report ("" when it has none)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return text.split(FAMILIES_MARK, 1)[1] if FAMILIES_MARK in text else ""


def write(report: ParityReport, directory: Path) -> list[Path]:
    """The report and its plot; a kernel-families section already in the report is kept."""
    directory.mkdir(parents=True, exist_ok=True)
    md, png = directory / REPORT_MD, directory / REPORT_PNG
    plot(report, png)
    atomic_write_bytes(md, with_families(markdown(report), families_section(md)).encode("utf-8"))
    return [md, png]
