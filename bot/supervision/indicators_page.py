"""The indicators page of the supervisor console: one HTML document, charts drawn on the
server (bot/supervision/charts.py), each followed by its figures as a table (read by screen
readers, copied into reports). No script, no external resource; every value escaped.

    html = indicators_html(await compute_indicators(...), start=date(2026, 3, 1), end=date(2026, 3, 31))

`start` and `end` are the dates the supervisor chose (end included: the route asks the
indicators for [start 00:00, end + 1 day 00:00) local time); the form sends them back as
GET parameters `from` and `to` (bot/supervision/routes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Any

from bot.supervision.charts import MISSING, NBSP, bar_chart, fr_number, grouped_bar_chart, line_chart

__all__ = ["indicators_html"]

TREND_LINES = 5

_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


def _pct_text(rate: float | None) -> str:
    return fr_number(_pct(rate), "%")


def _n(value: float | None) -> str:
    return fr_number(value, decimals=0)


def _fr_date(day: date) -> str:
    return f"{'1er' if day.day == 1 else day.day} {_MONTHS[day.month - 1]} {day.year}"


def _short_day(iso: str) -> str:
    day = date.fromisoformat(iso)
    return f"{day.day:02d}/{day.month:02d}"


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A small table of the figures a chart draws; the first column names the row."""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + f'<th scope="row">{_e(row[0])}</th>' + "".join(f"<td>{_e(c)}</td>" for c in row[1:]) + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(headers)}">Aucune donnée sur la période.</td></tr>'
    return (f'<table class="figures"><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _section(ident: str, heading: str, note: str, chart: str, table: str) -> str:
    # The chart is already escaped SVG (charts.py): it is the one thing inserted as is.
    return (f'<section id="{_e(ident)}" aria-labelledby="{_e(ident)}-titre">'
            f'<h2 id="{_e(ident)}-titre">{_e(heading)}</h2>'
            + (f'<p class="note">{_e(note)}</p>' if note else "")
            + f'<figure class="chart-figure">{chart}</figure>{table}</section>')


def _hours_section(ind: dict[str, Any]) -> str:
    hours = ind["by_hour"]
    labels = [f"{h['hour']} h" for h in hours]
    chart = grouped_bar_chart(
        "Taux de réponse par heure de la journée", labels,
        {"Heures d'ouverture": [_pct(h["business"]["rate"]) for h in hours],
         "Hors heures d'ouverture": [_pct(h["off_hours"]["rate"]) for h in hours]},
        unit="%")
    rows = [[f"{h['hour']}{NBSP}h{NBSP}–{NBSP}{h['hour'] + 1}{NBSP}h", _n(h["calls"]), _n(h["answered"]), _pct_text(h["rate"]),
             _n(h["business"]["calls"]), _pct_text(h["business"]["rate"]),
             _n(h["off_hours"]["calls"]), _pct_text(h["off_hours"]["rate"])] for h in hours]
    table = _table("Appels et taux de réponse par heure (heure locale)",
                   ["Heure", "Appels", "Répondus", "Taux", "Appels en heures d'ouverture", "Taux",
                    "Appels hors heures d'ouverture", "Taux"], rows)
    note = ("Un appel est répondu quand le bot ou un conseiller a parlé. L'ancien indicateur ne portait que "
            "sur les heures d'ouverture ; le bot répond jour et nuit, les deux sont donc montrés.")
    return _section("reponse", "Taux de réponse", note, chart, table)


def _resolution_section(ind: dict[str, Any]) -> str:
    window = fr_number(ind.get("period", {}).get("reopen_window_h", 24))
    items = [
        (f"Strict (sans rappel sous {window} h)", ind["resolved_by_bot"], ind["resolved_by_bot_rate"]),
        ("Non vérifiable (sans numéro)", ind["resolved_unverifiable"], ind["resolved_unverifiable_rate"]),
        ("Naïf (sans transfert)", ind["resolved_naive"], ind["resolved_naive_rate"]),
    ]
    chart = bar_chart("Appels résolus par le bot, en part des appels répondus", [i[0] for i in items],
                      [_pct(i[2]) or 0.0 for i in items], unit="%", horizontal=True)
    table = _table("Appels résolus par le bot", ["Définition", "Appels", "Part des appels répondus"],
                   [[label, _n(count), _pct_text(rate)] for label, count, rate in items])
    note = (f"Strict : conversation terminée normalement, ou raccrochée après une réponse du bot, sans transfert, "
            f"et le même numéro ne rappelle pas dans les {window} heures. Les appels sans numéro (web) ne "
            "peuvent pas être vérifiés : ils sont comptés à part. Naïf : tout appel répondu sans transfert, "
            "raccrochés et rappels compris.")
    return _section("resolution", "Résolution par le bot", note, chart, table)


def _counts_section(ident: str, heading: str, title: str, counts: dict[str, int], first_column: str,
                    note: str = "") -> str:
    labels, values = list(counts), [float(v) for v in counts.values()]
    chart = bar_chart(title, labels, values, horizontal=True)
    table = _table(title, [first_column, "Appels"], [[label, _n(v)] for label, v in counts.items()])
    return _section(ident, heading, note, chart, table)


def _abandons_section(ind: dict[str, Any]) -> str:
    items = [("En file d'attente d'un conseiller", ind["abandons"]["queued"]),
             ("Pendant le dialogue avec le bot", ind["abandons"]["bot"])]
    chart = bar_chart("Appels abandonnés", [i[0] for i in items], [float(i[1]) for i in items], horizontal=True)
    table = _table("Appels abandonnés", ["Moment", "Appels"], [[label, _n(v)] for label, v in items])
    note = ("En file : l'appelant a raccroché en attendant un conseiller. Dialogue : il a raccroché avant "
            "d'avoir reçu une réponse à ce qu'il a dit (ou sans avoir rien dit).")
    return _section("abandons", "Abandons", note, chart, table)


def _callbacks_section(ind: dict[str, Any]) -> str:
    items = [("Demandés", ind["callbacks"]["booked"]), ("Effectués", ind["callbacks"]["made"])]
    chart = bar_chart("Rappels demandés et effectués", [i[0] for i in items], [float(i[1]) for i in items],
                      horizontal=True)
    table = _table("Rappels", ["Rappels", "Nombre"], [[label, _n(v)] for label, v in items])
    return _section("rappels", "Rappels", "Effectués : rappels demandés sur la période et marqués faits.",
                    chart, table)


def _questions_section(ind: dict[str, Any]) -> str:
    top = ind["top_question_types"]
    chart = bar_chart("Types de questions les plus fréquents", [t["intent"] for t in top],
                      [float(t["count"]) for t in top], horizontal=True)
    trend = ind["trend"]
    days = [_short_day(d) for d in trend["days"]]
    # Five lines are still told apart; the table gives all ten, day by day.
    chart += line_chart(f"Évolution par jour des {TREND_LINES} types de questions les plus fréquents", days,
                        {i: [float(c) for c in counts] for i, counts in list(trend["counts"].items())[:TREND_LINES]})
    headers = ["Type de question", "Total", *days]
    rows = [[t["intent"], _n(t["count"]), *(_n(c) for c in trend["counts"].get(t["intent"], []))] for t in top]
    table = _table("Types de questions (tours de l'appelant), total et par jour", headers, rows)
    return _section("questions", "Types de questions", "Les 10 intentions les plus fréquentes des appelants.",
                    chart, table)


def _latency_section(ind: dict[str, Any]) -> str:
    days = ind["per_day"]
    labels = [_short_day(d["day"]) for d in days]
    chart = line_chart("Latence de réponse du bot par jour", labels,
                       {"Médiane (p50)": [d["latency_p50_ms"] for d in days],
                        "95e centile (p95)": [d["latency_p95_ms"] for d in days]}, "ms")
    rows = [[_fr_date(date.fromisoformat(d["day"])), _n(d["calls"]), fr_number(d["latency_p50_ms"], "ms"),
             fr_number(d["latency_p95_ms"], "ms")] for d in days]
    table = _table("Latence de réponse du bot par jour", ["Jour", "Appels", "Médiane (p50)", "95e centile (p95)"],
                   rows)
    note = (f"Du moment où l'appelant cesse de parler au premier son de la réponse du bot. {MISSING} : aucune "
            "mesure ce jour-là.")
    return _section("latence", "Latence", note, chart, table)


def _turns_section(ind: dict[str, Any]) -> str:
    days = ind["per_day"]
    labels = [_short_day(d["day"]) for d in days]
    chart = grouped_bar_chart("Tours coupés et réponses de secours par jour", labels,
                              {"Tours coupés": [float(d["cut_turns"]) for d in days],
                               "Réponses de secours": [float(d["fallback_answers"]) for d in days]})
    rows = [[_fr_date(date.fromisoformat(d["day"])), _n(d["cut_turns"]), _n(d["fallback_answers"])] for d in days]
    table = _table("Tours coupés et réponses de secours par jour", ["Jour", "Tours coupés", "Réponses de secours"],
                   rows)
    note = ("Tour coupé : l'appelant a continué de parler alors que le bot commençait à répondre. Réponse de "
            "secours : réponse construite à partir de la base de connaissances, faute de réponse préparée.")
    return _section("tours", "Tours coupés et réponses de secours", note, chart, table)


def _summary(ind: dict[str, Any]) -> str:
    def of(counts: dict[str, Any]) -> str:
        return f"{_n(counts['answered'])} répondus sur {_n(counts['calls'])} ({_pct_text(counts['rate'])})"

    rows = [
        ["Appels", _n(ind["calls"])],
        ["Appels répondus", f"{_n(ind['answered'])} ({_pct_text(ind['answered_rate'])})"],
        ["En heures d'ouverture", of(ind["business_hours"])],
        ["Hors heures d'ouverture", of(ind["off_hours"])],
        ["Résolus par le bot (strict)", f"{_n(ind['resolved_by_bot'])} ({_pct_text(ind['resolved_by_bot_rate'])})"],
    ]
    return ('<section id="resume" aria-labelledby="resume-titre"><h2 id="resume-titre">En bref</h2>'
            + _table("Chiffres clés de la période", ["Indicateur", "Valeur"], rows) + "</section>")


def indicators_html(ind: dict[str, Any], *, start: date, end: date) -> str:
    """The whole indicators page (French), for the indicators `compute_indicators` gave."""
    period = f"du {_fr_date(start)} au {_fr_date(end)}"
    form = ('<form class="period" method="get">'
            f'<label for="from">Du</label> <input type="date" id="from" name="from" '
            f'value="{_e(start.isoformat())}" required> '
            f'<label for="to">au</label> <input type="date" id="to" name="to" value="{_e(end.isoformat())}" required> '
            '<button type="submit">Afficher</button></form>')
    sections = [
        _summary(ind),
        _hours_section(ind),
        _resolution_section(ind),
        _counts_section("transferts", "Transferts vers un conseiller", "Transferts par motif",
                        ind["transfers_by_reason"], "Motif"),
        _counts_section("equipes", "Transferts par équipe", "Transferts par équipe", ind["transfers_by_team"],
                        "Équipe"),
        _abandons_section(ind),
        _callbacks_section(ind),
        _questions_section(ind),
        _counts_section("caisses", "Appels par caisse régionale", "Appels par caisse régionale", ind["by_office"],
                        "Caisse régionale",
                        "Caisse du compte identifié, sinon zone du numéro appelant ; « inconnu » quand ni l'un "
                        "ni l'autre ne la donne (mobile, appel web)."),
        _latency_section(ind),
        _turns_section(ind),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="fr">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Indicateurs {_e(period)} – Supervision</title>\n"
        '<link rel="stylesheet" href="/static/agent.css">\n'
        '<link rel="stylesheet" href="/static/supervisor.css">\n'
        "</head>\n<body>\n"
        '<header class="topbar"><h1>Console superviseur</h1><nav class="tabs" aria-label="Sections">'
        '<a href="/supervisor">Appels</a> <a href="/supervisor/indicators" aria-current="page">Indicateurs</a>'
        "</nav></header>\n"
        '<main class="page indicators">\n'
        f"<h2>Indicateurs {_e(period)}</h2>\n{form}\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )
