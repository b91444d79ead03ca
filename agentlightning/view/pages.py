"""The HTML of `agl view`: a run page, a step page and a rollout page, rendered on the server.

Where this sits: `agl view` → `app.py` (routes) → **pages.py** (HTML) ← `source.py` (what the run recorded).

Rules: every piece of text that came from a model, an agent, a task or a store is escaped (`_e`): model text is
untrusted, and a reply containing `<script>` shows as text. Charts are inline SVG drawn here; the page loads nothing
from the internet (the CSS is `STYLE`, inline). Long lists are paged (`PAGE_SIZE` rollouts per step page).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

__all__ = ["PAGE_SIZE", "STYLE", "rollout_page", "run_page", "step_page"]

PAGE_SIZE = 100
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 40px;color:#1d1d1f;background:#fafafa}
header{padding:12px 0;border-bottom:1px solid #ddd;margin-bottom:12px} header a{margin-right:12px}
h1{font-size:20px;margin:8px 0} h2{font-size:16px;margin:20px 0 8px} a{color:#0b57d0;text-decoration:none}
table{border-collapse:collapse;background:#fff;margin:6px 0} td,th{border:1px solid #e2e2e2;padding:3px 7px;
text-align:left;vertical-align:top;font-variant-numeric:tabular-nums} th{background:#f0f0f3}
tr.group td{background:#eef3fb;font-weight:600} .bad{color:#b3261e} .ok{color:#146c2e} .muted{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:16px} .chart{background:#fff;border:1px solid #e2e2e2;padding:6px}
.strip{font:12px/1.9 ui-monospace,monospace;background:#fff;border:1px solid #e2e2e2;padding:6px;
white-space:pre-wrap;word-break:break-all} .tok{border-radius:2px;padding:0 1px}
.prompt{color:#666} .masked{background:repeating-linear-gradient(45deg,#eee,#eee 3px,#ddd 3px,#ddd 6px);color:#555}
.reward{outline:2px solid #b3261e} pre{white-space:pre-wrap;background:#fff;border:1px solid #e2e2e2;padding:6px;
margin:4px 0} .msg{margin:4px 0} .role{font-weight:600;margin-right:6px} form{margin:8px 0}
.legend span{margin-right:14px}
"""
_COLORS = ["#0b57d0", "#b3261e", "#146c2e", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d"]


def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else _e(value)


def _page(title: str, body: str, refresh: int | None = None, base: str = "") -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (f'<!doctype html><html><head><meta charset="utf-8">{meta}<title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head><body><header><a href=\"{base}/\">run</a>"
            f'<span class="muted">agl view</span></header><h1>{_e(title)}</h1>{body}</body></html>')


# ------------------------------------------------------------------------------------------------ charts
def _line_chart(title: str, series: dict[str, list[tuple[float, float]]], y_max: float | None = None,
                width: int = 460, height: int = 220) -> str:
    """Lines (with points) of (x, y) series in one SVG, y from 0 to `y_max` (else the largest value)."""
    points = [p for s in series.values() for p in s]
    if not points:
        return f'<div class="chart"><b>{_e(title)}</b><p class="muted">no data yet</p></div>'
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    top = y_max if y_max is not None else max(max(p[1] for p in points), 1e-9)
    left, bottom, inner_w, inner_h = 40, height - 24, width - 56, height - 48

    def xy(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / ((x1 - x0) or 1) * inner_w, bottom - min(max(y, 0.0), top) / top * inner_h)

    parts = [f'<line x1="{left}" y1="{bottom}" x2="{left + inner_w}" y2="{bottom}" stroke="#999"/>',
             f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{bottom - inner_h}" stroke="#999"/>',
             f'<text x="4" y="{bottom - inner_h + 4}" font-size="10">{top:.2g}</text>',
             f'<text x="4" y="{bottom}" font-size="10">0</text>',
             f'<text x="{left}" y="{height - 6}" font-size="10">step {x0:g}</text>',
             f'<text x="{left + inner_w - 40}" y="{height - 6}" font-size="10">step {x1:g}</text>']
    legend = []
    for k, (name, values) in enumerate(series.items()):
        color = _COLORS[k % len(_COLORS)]
        coords = [xy(x, y) for x, y in sorted(values)]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"><title>{_e(name)}: step {sx:g} = '
                  f'{sy:.3f}</title></circle>' for (x, y), (sx, sy) in zip(coords, sorted(values), strict=True)]
        legend.append(f'<span style="color:{color}">■ {_e(name)}</span>')
    return (f'<div class="chart"><b>{_e(title)}</b><div class="legend">{"".join(legend)}</div>'
            f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(title)}">{"".join(parts)}</svg></div>')


def _stacked_bars(title: str, rows: list[dict[str, Any]], keys: Sequence[str], width: int = 460,
                  height: int = 220) -> str:
    steps = [r for r in rows if any(r.get(k) for k in keys)]
    if not steps:
        return f'<div class="chart"><b>{_e(title)}</b><p class="muted">no data yet</p></div>'
    top = max(sum(float(r.get(k) or 0) for k in keys) for r in steps) or 1.0
    left, bottom, inner_w, inner_h = 40, height - 24, width - 56, height - 48
    bar = inner_w / len(steps)
    parts = [f'<text x="4" y="{bottom - inner_h + 4}" font-size="10">{top:.0f}s</text>']
    for i, row in enumerate(steps):
        y = bottom
        for k, key in enumerate(keys):
            h = float(row.get(key) or 0) / top * inner_h
            y -= h
            parts.append(f'<rect x="{left + i * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" '
                         f'height="{h:.1f}" fill="{_COLORS[k % len(_COLORS)]}"><title>step {row["step"]} '
                         f'{_e(key)}: {float(row.get(key) or 0):.1f} s</title></rect>')
    legend = "".join(f'<span style="color:{_COLORS[k % len(_COLORS)]}">■ {_e(key.split("/")[-1])}</span>'
                     for k, key in enumerate(keys))
    return (f'<div class="chart"><b>{_e(title)}</b><div class="legend">{legend}</div>'
            f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(title)}">{"".join(parts)}</svg></div>')


# ------------------------------------------------------------------------------------------------ run page
_TIMINGS = ("timing_s/rollout", "timing_s/adapter", "timing_s/update", "timing_s/weight_sync", "timing_s/checkpoint")
_COUNTS = [("rollouts", "rollout/count"), ("failed", "rollout/failed"), ("infra failed", "rollout/infra_failed"),
           ("reused", "rollout/reused"), ("without samples", "rollout/without_triplets"),
           ("merge failures", "adapter/merge_failures"), ("groups incomplete", "batch/groups_incomplete"),
           ("samples", "batch/num_samples")]


def run_page(title: str, metrics: list[dict[str, Any]], steps: list[int], counts: dict[str, int],
             base: str = "") -> str:
    train = [r for r in metrics if r.get("step", 0) > 0 and "accuracy" in r]
    accuracy = [(float(r["step"]), float(r["accuracy"])) for r in train]
    rolling = [(x, sum(y for _, y in accuracy[max(0, i - 2): i + 1]) / len(accuracy[max(0, i - 2): i + 1]))
               for i, (x, _) in enumerate(accuracy)]
    val_keys = sorted({k for r in metrics for k in r if k == "val/accuracy" or k.startswith("val/accuracy/")})
    validation = {k.removeprefix("val/"): [(float(r["step"]), float(r[k])) for r in metrics if k in r]
                  for k in val_keys}
    charts = [_line_chart("training accuracy per step", {"accuracy": accuracy, "rolling mean (3)": rolling}, 1.0),
              _line_chart("validation accuracy", validation, 1.0),
              _line_chart("reward (mean) per step", {"reward": [(float(r["step"]), float(r.get("reward/mean", 0)))
                                                                for r in train]}),
              _stacked_bars("time per step (s)", train, _TIMINGS)]
    by_step = {int(r["step"]): r for r in metrics}
    head = "".join(f"<th>{_e(label)}</th>" for label, _ in _COUNTS)
    body = []
    for step in steps:
        row = by_step.get(step, {})
        cells = "".join(f"<td>{_num(row.get(key), 0)}</td>" for _, key in _COUNTS)
        body.append(f'<tr><td><a href="{base}/step/{step}">step {step}</a></td><td>{_num(row.get("accuracy"))}</td>'
                    f'<td>{_num(row.get("reward/mean"))}</td><td>{_num(row.get("timing_s/step"), 1)}</td>{cells}</tr>')
    summary = ", ".join(f"{v:,} {k}" for k, v in counts.items())
    content = (f'<p class="muted">{len(steps)} steps{" · store: " + _e(summary) if summary else ""} · refreshes '
               f'every 15 s</p><div class="charts">{"".join(charts)}</div><h2>Steps</h2>'
               f'<table id="steps"><tr><th>step</th><th>accuracy</th><th>reward</th><th>seconds</th>{head}</tr>'
               f'{"".join(body)}</table>')
    return _page(title, content, refresh=15, base=base)


# ------------------------------------------------------------------------------------------------ step page
_SORTS = {"reward": lambda r: r.get("reward") or 0.0,
          "status": lambda r: r.get("status") or "", "turns": lambda r: r.get("turns") or 0,
          "tokens": lambda r: r.get("tokens") or 0, "duration": lambda r: r.get("duration_s") or 0.0}


def step_page(step: dict[str, Any], query: dict[str, str], base: str = "") -> str:
    rows: list[dict[str, Any]] = step["rollouts"]
    status, sort, order = query.get("status", ""), query.get("sort", "group"), query.get("order", "asc")
    min_reward = query.get("min_reward", "")
    shown = [r for r in rows if not status or r.get("status") == status]
    if min_reward:
        shown = [r for r in shown if (r.get("reward") or 0.0) >= float(min_reward)]
    first_seen: dict[Any, int] = {}
    for index, r in enumerate(rows):
        first_seen.setdefault(r.get("data_id"), index)
    in_groups = {id(r): (first_seen[r.get("data_id")], i) for i, r in enumerate(rows)}  # groups in play order
    shown.sort(key=_SORTS.get(sort, lambda r: in_groups[id(r)]), reverse=order == "desc")
    page = max(int(query.get("page", "1") or 1), 1)
    pages = max(math.ceil(len(shown) / PAGE_SIZE), 1)
    visible = shown[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]

    def link(**changes: str) -> str:
        return f"{base}/step/{step['step']}?" + _e(urlencode({**query, **changes}))

    statuses = sorted({str(r.get("status")) for r in rows})
    options = "".join(f'<option value="{_e(s)}"{" selected" if s == status else ""}>{_e(s)}</option>'
                      for s in ["", *statuses])
    form = (f'<form method="get">status <select name="status">{options}</select> reward ≥ <input name="min_reward" '
            f'size="4" value="{_e(min_reward)}"><input type="hidden" name="sort" value="{_e(sort)}">'
            '<button type="submit">filter</button></form>')
    columns = [("rollout", None), ("task", None), ("group", "group"), ("status", "status"), ("attempts", None),
               ("reward", "reward"), ("turns", "turns"), ("tokens", "tokens"), ("duration s", "duration"),
               ("worker", None), ("in update", None), ("error / why not trained", None)]
    head = "".join(f'<th><a href="{link(sort=key, order="desc" if sort == key and order == "asc" else "asc")}">'
                   f"{_e(label)}</a></th>" if key else f"<th>{_e(label)}</th>" for label, key in columns)
    body, current = [], None
    for r in visible:
        if sort == "group" and r.get("data_id") != current:
            current = r.get("data_id")
            members = [m for m in rows if m.get("data_id") == current]
            rewards = [m.get("reward") for m in members if m.get("reward") is not None]
            mean = f"{sum(rewards) / len(rewards):.2f}" if rewards else "-"
            body.append(f'<tr class="group"><td colspan="{len(columns)}">GRPO group {_e(current)} · '
                        f"{len(members)} episodes · mean reward {mean}</td></tr>")
        css = "ok" if r.get("status") == "succeeded" else "bad"
        trained = {True: "yes", False: "no", None: ""}[r.get("in_update")]
        body.append(
            f'<tr class="rollout"><td><a href="{base}/rollout/{_e(r["rollout_id"])}">{_e(r["rollout_id"])}</a></td>'
            f'<td>{_e((r.get("task") or "")[:120])}</td><td>{_e(r.get("group") or r.get("data_id"))}</td>'
            f'<td class="{css}">{_e(r.get("status"))}{" (" + _e(r["cause"]) + ")" if r.get("cause") else ""}</td>'
            f'<td>{_e(r.get("attempts"))}</td><td>{_num(r.get("reward"), 2)}</td><td>{_e(r.get("turns"))}</td>'
            f'<td>{_e(r.get("tokens"))}</td><td>{_num(r.get("duration_s"), 1)}</td><td>{_e(r.get("worker"))}</td>'
            f'<td>{trained}</td><td>{_e(r.get("error") or r.get("why_not") or "")}</td></tr>')
    pager = " ".join(f'<a href="{link(page=str(p))}">{p}</a>' if p != page else f"<b>{p}</b>"
                     for p in range(1, pages + 1)) if pages > 1 else ""
    note = "" if step["recorded"] else '<p class="muted">no step record: rollouts as the store has them</p>'
    content = (f'<p>{len(rows)} rollouts, {sum(1 for r in rows if r.get("in_update"))} in the update, '
               f'{len(step["samples"])} samples trained · <a href="{base}/step/{step["step"] - 1}">previous</a> · '
               f'<a href="{base}/step/{step["step"] + 1}">next</a></p>{note}{form}<p>{pager}</p>'
               f'<table id="rollouts"><tr>{head}</tr>{"".join(body)}</table><p>{pager}</p>')
    return _page(f"Step {step['step']}", content, refresh=15, base=base)


# ------------------------------------------------------------------------------------------------ rollout page
def _timeline(spans: list[Any], width: int = 900) -> str:
    timed = [s for s in spans if s.start_time and s.end_time]
    if not timed:
        return '<p class="muted">no spans recorded (the store held none for this attempt)</p>'
    t0, t1 = min(s.start_time for s in timed), max(s.end_time for s in timed)
    scale, row_h, label_w = (width - 260) / max(t1 - t0, 1e-6), 16, 250
    parts = []
    for i, span in enumerate(spans):
        start, end = (span.start_time or t0), (span.end_time or span.start_time or t0)
        kind = "llm" if span.name == "llm.call" else "error" if span.status == "error" else "other"
        color = {"llm": "#0b57d0", "error": "#b3261e", "other": "#16a085"}[kind]
        label = span.attributes.get("agent_name") or span.attributes.get("tool") or ""
        text = f"{span.sequence_id} {span.name}{' · ' + str(label) if label else ''}"
        x, w = label_w + (start - t0) * scale, max((end - start) * scale, 2)
        parts.append(f'<text x="2" y="{i * row_h + 12}" font-size="11">{_e(text[:40])}</text>'
                     f'<rect x="{x:.1f}" y="{i * row_h + 3}" width="{w:.1f}" height="{row_h - 5}" fill="{color}">'
                     f"<title>{_e(text)}: {end - start:.3f} s</title></rect>")
    return (f'<svg id="timeline" width="{width}" height="{len(spans) * row_h + 6}" role="img" '
            f'aria-label="span timeline">{"".join(parts)}</svg>')


def _chat(spans: list[Any]) -> str:
    calls = [s for s in spans if s.name == "llm.call"]
    if not calls:
        return '<p class="muted">no model calls recorded</p>'
    out = []
    for k, call in enumerate(calls):
        request, response = call.attributes.get("request") or {}, call.attributes.get("response") or {}
        messages = request.get("messages") or [{"role": "prompt", "content": request.get("prompt", "")}]
        shown = "".join(f'<div class="msg"><span class="role">{_e(m.get("role"))}</span><pre>'
                        f'{_e(m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content")))}'
                        f"</pre></div>" for m in messages if isinstance(m, dict))
        reply = response.get("text") or ""
        calls_made = response.get("tool_calls")
        tools = f"<pre>{_e(json.dumps(calls_made, ensure_ascii=False))}</pre>" if calls_made else ""
        error = f'<p class="bad">{_e(call.attributes.get("error"))}</p>' if call.status == "error" else ""
        out.append(f'<details class="call"{" open" if k == len(calls) - 1 else ""}><summary>model call {k + 1} '
                   f"(seq {call.sequence_id}, {len(call.attributes.get('prompt_token_ids') or [])} prompt tokens)"
                   f'</summary>{shown}<div class="msg"><span class="role">reply</span><pre class="reply">{_e(reply)}'
                   f"</pre></div>{tools}{error}</details>")
    return "".join(out)


def _heat(logprob: float | None) -> str:
    if logprob is None:
        return "#e8f0fe"
    p = math.exp(max(logprob, -20.0))  # probability 1 → pale green, 0 → red
    return f"hsl({int(120 * p)},70%,{int(88 - 18 * (1 - p))}%)"


def _sample(sample: dict[str, Any], tokens: Callable[[list[int]], list[str]]) -> str:
    prompt = "".join(f'<span class="tok prompt">{_e(t)}</span>' for t in tokens(sample["prompt_ids"]))
    pieces = tokens(sample["response_ids"])
    logprobs, advantages = sample.get("logprobs") or [], sample.get("advantages") or []
    strip = []
    for i, (text, trained) in enumerate(zip(pieces, sample["response_mask"], strict=False)):
        lp = logprobs[i] if i < len(logprobs) else None
        adv = advantages[i] if i < len(advantages) else None
        classes = "tok" + ("" if trained else " masked") + (" reward" if i == sample.get("reward_index") else "")
        tip = (f"{'trained' if trained else 'masked (tool/observation)'} · logprob "
               f"{lp if lp is not None else '-'} · advantage {adv if adv is not None else '-'}")
        style = f' style="background:{_heat(lp)}"' if trained else ""
        strip.append(f'<span class="{classes}"{style} title="{_e(tip)}">{_e(text)}</span>')
    trained_adv = [a for a, m in zip(advantages, sample["response_mask"], strict=False) if m]
    adv_text = f"{trained_adv[0]:+.3f}" if trained_adv and max(trained_adv) == min(trained_adv) else (
        f"{min(trained_adv):+.3f} … {max(trained_adv):+.3f}" if trained_adv else "-")
    return (f'<div class="sample"><h3>turn {_e(sample["turn"])} · spans {_e(sample.get("sequence_ids"))} · reward '
            f'{_num(sample.get("reward"), 2)} on token {_e(sample.get("reward_index"))} · advantage '
            f'<span class="advantage">{_e(adv_text)}</span> · {sum(sample["response_mask"])} trained / '
            f'{len(sample["response_mask"])} response tokens</h3><details><summary>prompt '
            f'({len(sample["prompt_ids"])} tokens)</summary><div class="strip">{prompt}</div></details>'
            f'<div class="strip response">{"".join(strip)}</div></div>')


def rollout_page(data: dict[str, Any], tokens: Callable[[list[int]], list[str]], base: str = "") -> str:
    rollout, record, attempts = data["rollout"], data["record"] or {}, data["attempts"]
    rid = rollout.rollout_id if rollout else record.get("rollout_id")
    task = rollout.input if rollout else None
    facts = [("status", rollout.status if rollout else record.get("status")), ("reward", record.get("reward")),
             ("task", json.dumps(task, ensure_ascii=False) if task is not None else ""),
             ("GRPO group", record.get("data_id") or (rollout.metadata.get("data_id") if rollout else "")),
             ("in the update", {True: "yes", False: "no", None: "-"}[record.get("in_update")]),
             ("why not trained", record.get("why_not") or ""), ("adapter problems", "; ".join(record.get("problems")
                                                                                              or []))]
    step = data.get("step")
    facts_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if v not in (None, ""))
    tries = "".join(f"<tr><td>{a.sequence_id}</td><td>{_e(a.status)}</td><td>{_e(a.worker_id)}</td><td>"
                    f"{_num((a.end_time - a.start_time) if a.end_time else None, 1)}</td><td>"
                    f"{_e(a.metadata.get('cause'))}</td><td>{_e(a.metadata.get('error'))}</td></tr>" for a in attempts)
    samples = data["samples"]
    why = record.get("why_not") or record.get("empty_reason") or "this rollout has no step record"
    sample_html = "".join(_sample(s, tokens) for s in samples) or f'<p class="bad" id="no-samples">No training ' \
        f"sample came from this rollout: {_e(why)}</p>"
    content = (f'<p>{f"<a href={chr(34)}{base}/step/{step}{chr(34)}>step {step}</a>" if step else ""}</p>'
               f'<table id="facts">{facts_html}</table><h2>Attempts</h2><table id="attempts"><tr><th>#</th>'
               f"<th>status</th><th>worker</th><th>seconds</th><th>cause</th><th>error</th></tr>{tries}</table>"
               f'<h2>Timeline (latest attempt)</h2>{_timeline(data["spans"])}<h2>Training samples</h2>'
               '<p class="legend"><span class="tok prompt">prompt</span><span class="tok" style="background:'
               'hsl(120,70%,88%)">trained token (green: likely, red: unlikely under the sampler)</span><span '
               'class="tok masked">masked tool output</span><span class="tok reward">reward</span></p>'
               f'<div id="samples">{sample_html}</div><h2>Chat, as the model saw it</h2>'
               f'<div id="chat">{_chat(data["spans"])}</div>')
    return _page(f"Rollout {rid}", content, base=base)
