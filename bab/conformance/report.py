"""The suite's reports: JSON (machine-readable, the format docs/conformance.md describes) and one
self-contained HTML file (inline style, no script, nothing loaded from elsewhere: it opens offline)."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

from .case import CaseResult, Verdict
from .runner import passed

FORMAT = "bab-conformance-report/1"


def to_json(results: list[CaseResult], meta: dict[str, Any]) -> dict[str, Any]:
    counts = {v.value: sum(r.verdict is v for r in results) for v in Verdict}
    return {"format": FORMAT, "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **meta,
            "summary": counts, "passed": passed(results),
            "cases": [r.to_json() for r in results]}


_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:13px}th{background:#eee;text-align:left}
.pass{background:#d8f5d0}.fail{background:#f8d0d0}.skipped{background:#eee}.na{background:#f4f4f4;color:#666}code{font-size:12px;word-break:break-all}
details{margin:2px 0}"""


def to_html(results: list[CaseResult], meta: dict[str, Any]) -> str:
    doc = to_json(results, meta)
    e = html.escape
    rows = []
    for r in results:
        figures = "".join(f"<div><b>{e(str(k))}</b>: {e(json.dumps(v, default=str))}</div>"
                          for k, v in r.figures.items())
        frames = "".join(f"<div><code>{ev.t:.6f} {ev.direction} {e(ev.note)}<br>{ev.data.hex()}</code></div>"
                         for ev in r.evidence)
        evidence = f"<details><summary>{len(r.evidence)} frames</summary>{frames}</details>" if r.evidence else ""
        optional = f" (optional: {e(r.optional)})" if r.optional else ""
        css = "na" if r.verdict is Verdict.NOT_APPLICABLE else r.verdict.value
        rows.append(f"<tr class='{css}'><td>{e(r.id)}</td><td>{e(r.title)}{optional}<br><small>{e(r.reference)}"
                    f"</small></td><td>{r.verdict.value}</td><td>{e(r.reason)}</td><td>{figures}</td>"
                    f"<td>{evidence}</td></tr>")
    head = "".join(f"<div><b>{e(str(k))}</b>: {e(str(v))}</div>" for k, v in meta.items())
    s = doc["summary"]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>LMN conformance report</title>"
            f"<style>{_STYLE}</style></head><body><h1>LMN conformance report</h1>{head}"
            f"<p><b>{s['pass']} passed, {s['fail']} failed, {s['skipped']} skipped, {s['n/a']} n/a</b> "
            f"(generated {e(doc['generated'])})</p><table><tr><th>case</th><th>title and reference</th>"
            f"<th>verdict</th><th>reason</th><th>figures</th><th>evidence</th></tr>{''.join(rows)}</table>"
            "</body></html>")


def write(path: Path, results: list[CaseResult], meta: dict[str, Any]) -> None:
    """Write the report; ``.html``/``.htm`` gives HTML, anything else JSON."""
    if path.suffix.lower() in (".html", ".htm"):
        path.write_text(to_html(results, meta), encoding="utf-8")
    else:
        path.write_text(json.dumps(to_json(results, meta), indent=1, default=str) + "\n", encoding="utf-8")


def table(results: list[CaseResult]) -> str:
    """The console summary: one line per case."""
    lines = []
    for r in results:
        lines.append(f"{r.verdict.value.upper():7} {r.id:16} {r.title}" + (f"\n        {r.reason}" if r.reason else ""))
    n = {v: sum(r.verdict is v for r in results) for v in Verdict}
    lines.append(f"{n[Verdict.PASS]} passed, {n[Verdict.FAIL]} failed, {n[Verdict.SKIPPED]} skipped, "
                 f"{n[Verdict.NOT_APPLICABLE]} n/a (optional, not offered)")
    return "\n".join(lines)
