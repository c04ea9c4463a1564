"""A model card as Markdown, for people (``modeldeploy card BUNDLE``, ``/model-card``)."""

from __future__ import annotations

from typing import Any

from modeldeploy.server.card import ModelCard


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _bullets(items: tuple[str, ...] | list[str], empty: str) -> list[str]:
    return [f"- {item}" for item in items] if items else [f"- {empty}"]


def card_markdown(card: ModelCard, digest: str | None = None) -> str:
    """Model details, uses, data, evaluation, ethics, caveats, schema and checks."""
    out = card.output
    task = (
        f"classification, classes {', '.join(map(str, out.classes))}; exported score "
        f"P({out.positive_class})"
        if out.kind == "classification"
        else "regression"
    )
    lines = [
        f"# Model card: {card.name} {card.version}",
        "",
        "## Model details",
        "",
        f"- Algorithm: `{card.algorithm}`",
        f"- Version: {card.version}, created {card.created}",
        f"- Task: {task}; target `{out.target}`",
        f"- Input: {'a DataFrame' if card.input_format == 'dataframe' else 'an array'} of "
        f"{len(card.features)} features",
    ]
    if digest:
        lines.append(f"- Bundle sha256 (pin this): `{digest}`")
    if card.sha256:
        lines.append(f"- model.joblib sha256: `{card.sha256}`")
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in card.hyperparameters.items())
    lines += [f"- Hyperparameters: {params or 'none'}", "", "## Intended use", ""]
    lines += [card.intended_use or "Not stated.", "", "## Out-of-scope uses", ""]
    lines += _bullets(card.out_of_scope, "None stated.")
    td = card.training_data
    lines += ["", "## Training data", "", f"- Rows: {td.get('rows')}"]
    lines.append(f"- Fingerprint: `{td.get('fingerprint')}`")
    if td.get("time_range"):
        start, end = td["time_range"]
        lines.append(f"- Time range (`{td.get('time_column')}`): {start} to {end}")
    lines += ["", "## Evaluation", ""]
    ev = card.evaluation
    if ev.get("data"):
        lines += [f"On {ev['data']}.", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in card.metrics.items()]
    groups = ev.get("subgroups") or {}
    if groups:
        names = sorted({k for m in groups.values() for k in m})
        lines += ["", f"Per subgroup of `{ev.get('subgroup_column')}`:", ""]
        lines += ["| group | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for group, values in groups.items():
            cells = " | ".join(_fmt(values.get(n, "")) for n in names)
            lines.append(f"| {group} | {cells} |")
    lines += ["", "## Ethical considerations", ""]
    lines += _bullets(card.ethical_considerations, "None stated.")
    lines += ["", "## Caveats and recommendations", ""]
    lines += _bullets(card.caveats, "None stated.")
    lines += ["", "## Input schema", "", "| feature | kind | dtype | values |", "|---|---|---|---|"]
    for f in card.features:
        if f.discrete:
            values = ", ".join(map(str, f.categories[:12])) + (
                " ..." if len(f.categories) > 12 else ""
            )
            if f.allow_unseen:
                values += " (unseen values allowed)"
        else:
            low = "" if f.minimum is None else _fmt(f.minimum)
            high = "" if f.maximum is None else _fmt(f.maximum)
            values = f"[{low}, {high}]" if low or high else "any"
        lines.append(f"| {f.name} | {f.kind} | {f.dtype or '-'} | {values} |")
    lines += ["", "## Directional checks", ""]
    lines += _bullets(
        [
            f"raising `{d.feature}` moves the output {d.direction} "
            f"(at most {d.tolerance:.0%} of rows against)"
            for d in card.directional_checks
        ],
        "None declared.",
    )
    return "\n".join(lines) + "\n"
