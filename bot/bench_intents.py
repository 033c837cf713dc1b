"""`callbot bench intents`: how well the router classifies, on phrasings it never saw.

Each question type's phrasings are split by phrasing (a quarter held out, at least 2,
stratified, fixed seed; every type keeps phrasings in both parts), and so are the
out_of_scope.yaml sentences; the classifier is trained on the rest exactly as
`callbot train` does (its threshold chosen from the training part only), then every
held-out sentence goes through `IntentRouter.route`, the real path of a call turn
(embedding included, timed; the lexical score reads the training part's phrasings only).
Questions from outside the domain that the router never trains on
(flows/data/bench_out_of_domain.yaml) measure rejection of the unknown.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from bot.bench import percentile
from flows.intent_classifier import (
    OUT_OF_SCOPE,
    EmbeddingCache,
    Example,
    examples_of,
    normalize,
    train_classifier,
    type_texts,
)
from flows.knowledge import DATA_DIR, DataError, Knowledge
from flows.router import IntentRouter, Route, RouterSettings, load_router

OUT_OF_DOMAIN_PATH = DATA_DIR / "bench_out_of_domain.yaml"
TARGET_TEAM_ACCURACY = 0.92
TARGET_TYPE_ACCURACY = 0.85
SEED = 7


def load_out_of_domain(path: Path = OUT_OF_DOMAIN_PATH) -> list[str]:
    raw = yaml.safe_load(path.read_text("utf-8"))
    items = raw.get("out_of_domain") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not all(isinstance(x, str) and x.strip() for x in items):
        raise DataError(f"{path.name}: 'out_of_domain' must be a list of sentences")
    return items


def split_examples(examples: Sequence[Example], holdout: float = 0.25, *, min_holdout: int = 2,
                   seed: int = SEED) -> tuple[list[Example], list[Example]]:
    """(train, held out), by phrasing, stratified by label: each label keeps at least 2
    examples for training and puts at least `min_holdout` (or 1 if it has only 3) aside."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Example]] = {}
    for e in examples:
        by_label.setdefault(e.label, []).append(e)
    train: list[Example] = []
    test: list[Example] = []
    for label in sorted(by_label):
        items = by_label[label]
        if len(items) < 3:
            raise ValueError(f"{label}: {len(items)} phrasings, the bench needs 3 at least")
        order = rng.permutation(len(items))
        n = min(max(min_holdout, round(len(items) * holdout)), len(items) - 2)
        test += [items[i] for i in order[:n]]
        train += [items[i] for i in order[n:]]
    return train, test


def _outcome(route: Route, truth: str) -> str:
    if route.intent is not None:
        return "routed_right" if route.intent == truth else "routed_wrong"
    if route.clarify is not None:
        return "clarify_right" if truth in route.clarify else "clarify_wrong"
    return "rejected"


def _top_type(route: Route) -> str:
    return route.candidates[0][0]


def _expected_calibration_error(confidences: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Mean gap between the probability given to the best type and how often it is right,
    over 10 bins of probability weighted by their size: 0 for perfect calibration."""
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(right, dtype=np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(hit[which == b].mean() - conf[which == b].mean()) * (which == b).sum()
                     for b in range(bins) if (which == b).any()) / max(len(conf), 1))


def run_intent_bench(knowledge: Knowledge, settings: RouterSettings, cache_dir: Path | None,
                     out_of_domain: Sequence[str], *, holdout: float = 0.25, seed: int = SEED,
                     sweep: bool = False) -> dict:
    """The figures of the module docstring, as a dict (what --json prints)."""
    examples = examples_of(knowledge)
    train, test = split_examples(examples, holdout, seed=seed)
    cache = EmbeddingCache(cache_dir)
    started = time.perf_counter()
    vectors = cache.vectors([e.text for e in train])
    teams = {qt.id: qt.team for qt in knowledge.question_types.values()}
    model = train_classifier(train, vectors, teams=teams, texts=type_texts(knowledge))
    train_s = time.perf_counter() - started
    router = IntentRouter(knowledge, settings, Path("."), model=model)

    rows: list[dict] = []
    timings: list[float] = []
    for kind, items in (("in_domain", [e for e in test if e.label != OUT_OF_SCOPE]),
                        ("out_of_scope", [e for e in test if e.label == OUT_OF_SCOPE]),
                        ("out_of_domain", [Example(normalize(t), OUT_OF_SCOPE) for t in out_of_domain])):
        for e in items:
            # What IntentRouter.route does (embedding, fused probabilities, decision), with
            # the scores kept for the settings sweep.
            t0 = time.perf_counter()
            probs, similarity, lexical = router.scores(e.text)
            route = router.decide(probs, similarity, lexical=lexical)
            timings.append((time.perf_counter() - t0) * 1000)
            rows.append({"kind": kind, "text": e.text, "truth": e.label, "route": route, "probs": probs,
                         "similarity": similarity, "lexical": lexical})

    in_domain = [r for r in rows if r["kind"] == "in_domain"]
    n = len(in_domain)
    outcomes = Counter(_outcome(r["route"], r["truth"]) for r in in_domain)
    top1_right = sum(_top_type(r["route"]) == r["truth"] for r in in_domain)
    team_right = sum(teams[_top_type(r["route"])] == teams[r["truth"]] for r in in_domain)
    routed = outcomes["routed_right"] + outcomes["routed_wrong"]
    pairs: Counter[tuple[str, str]] = Counter()
    directions: Counter[tuple[str, str]] = Counter()
    for r in in_domain:
        predicted = _top_type(r["route"])
        if predicted != r["truth"]:
            pairs[tuple(sorted((r["truth"], predicted)))] += 1
            directions[(r["truth"], predicted)] += 1

    def rejected(kind: str) -> tuple[float, list[dict]]:
        items = [r for r in rows if r["kind"] == kind]
        kept = [r for r in items if r["route"].intent is not None or r["route"].clarify is not None]
        accepted = [{"text": r["text"], "intent": r["route"].intent, "clarify": r["route"].clarify,
                     "score": r["route"].score} for r in kept]
        return (1 - len(kept) / len(items) if items else float("nan")), accepted

    by_team: dict[str, list[int]] = {}
    for r in in_domain:
        counts = by_team.setdefault(teams[r["truth"]], [0, 0, 0])
        counts[0] += 1
        counts[1] += _top_type(r["route"]) == r["truth"]
        counts[2] += teams[_top_type(r["route"])] == teams[r["truth"]]
    oos_rate, _ = rejected("out_of_scope")
    ood_rate, ood_accepted = rejected("out_of_domain")
    result = {
        "data": {
            "types": len(model.classes) - (OUT_OF_SCOPE in model.classes),
            "teams": len({teams[t] for t in router.types}),
            "train_sentences": len(train),
            "held_out_phrasings": n,
            "held_out_out_of_scope": sum(r["kind"] == "out_of_scope" for r in rows),
            "out_of_domain": sum(r["kind"] == "out_of_domain" for r in rows),
            "holdout": holdout,
            "seed": seed,
        },
        "settings": {"threshold": round(router.threshold, 4), "max_false_rejection": settings.max_false_rejection,
                     "clarify_margin": settings.clarify_margin, "clarify_min": settings.clarify_min,
                     "temperature": round(model.temperature, 3)},
        "type_accuracy": top1_right / n,
        "team_accuracy": team_right / n,
        "outcomes": {k: outcomes[k] / n for k in
                     ("routed_right", "routed_wrong", "clarify_right", "clarify_wrong", "rejected")},
        "routed_precision": outcomes["routed_right"] / routed if routed else float("nan"),
        "calibration_error": _expected_calibration_error(
            [r["route"].score for r in in_domain], [_top_type(r["route"]) == r["truth"] for r in in_domain]),
        "false_rejection": outcomes["rejected"] / n,
        "out_of_scope_rejection": oos_rate,
        "out_of_domain_rejection": ood_rate,
        "out_of_domain_accepted": ood_accepted,
        "by_team": {team: {"held_out": n_, "type_accuracy": t_ / n_, "team_accuracy": m_ / n_}
                    for team, (n_, t_, m_) in sorted(by_team.items())},
        "confused_pairs": [
            {"pair": list(pair), "count": count, "a_as_b": directions[pair], "b_as_a": directions[pair[::-1]]}
            for pair, count in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        ],
        "route_ms": {"p50": percentile(timings, 0.5), "p95": percentile(timings, 0.95),
                     "mean": statistics.fmean(timings)},
        "train_seconds": round(train_s, 2),
    }
    result["targets_met"] = (result["team_accuracy"] >= TARGET_TEAM_ACCURACY
                             and result["type_accuracy"] >= TARGET_TYPE_ACCURACY)
    if sweep:
        result["sweep"] = _sweep(router, rows)
    return result


def _sweep(router: IntentRouter, rows: list[dict]) -> list[dict]:
    """The same held-out probabilities decided under other settings: how the defaults of
    RouterSettings were chosen."""
    out = []
    for mfr in (0.03, 0.05, 0.08):
        for margin in (0.0, 0.1, 0.15, 0.2, 0.3):
            for cmin in (0.2, 0.25, 0.3):
                variant = router.with_settings(replace(router.settings, max_false_rejection=mfr,
                                                       clarify_margin=margin, clarify_min=cmin))
                decided = [(r, variant.decide(r["probs"], r["similarity"], lexical=r["lexical"])) for r in rows]
                ind = [(r, d) for r, d in decided if r["kind"] == "in_domain"]
                o = Counter(_outcome(d, r["truth"]) for r, d in ind)
                ood = [d for r, d in decided if r["kind"] != "in_domain"]
                out.append({
                    "max_false_rejection": mfr, "clarify_margin": margin, "clarify_min": cmin,
                    "threshold": round(variant.threshold, 2),
                    **{k: round(o[k] / len(ind), 4) for k in
                       ("routed_right", "routed_wrong", "clarify_right", "clarify_wrong", "rejected")},
                    "ood_rejection": round(sum(d.intent is None and d.clarify is None for d in ood) / len(ood), 4),
                })
    return out


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def format_report(result: dict) -> str:
    d, s, o = result["data"], result["settings"], result["outcomes"]
    lines = [
        f"intent router, held-out split (seed {d['seed']}, {100 * d['holdout']:.0f} % of each type's phrasings):",
        (f"  {d['types']} question types in {d['teams']} teams; trained on {d['train_sentences']} sentences "
        f"in {result['train_seconds']:.1f} s; tested on {d['held_out_phrasings']} held-out phrasings, "
        f"{d['held_out_out_of_scope']} held-out out-of-scope sentences, {d['out_of_domain']} out-of-domain questions"),
        (f"  calibration: temperature {s['temperature']}, rejection threshold {s['threshold']} "
        f"(max false rejection {s['max_false_rejection']}), clarify when the two best are within "
        f"{s['clarify_margin']} and the second >= {s['clarify_min']}"),
        "",
        f"  team accuracy (best type)      {_pct(result['team_accuracy'])}   target >= {100 * TARGET_TEAM_ACCURACY:.0f} %",
        f"  question-type accuracy         {_pct(result['type_accuracy'])}   target >= {100 * TARGET_TYPE_ACCURACY:.0f} %",
        "  what the caller gets (held-out phrasings):",
        f"    routed to the right type     {_pct(o['routed_right'])}",
        f"    routed to a wrong type       {_pct(o['routed_wrong'])}",
        f"    clarifying question, right   {_pct(o['clarify_right'])}   (the pair holds the type)",
        f"    clarifying question, wrong   {_pct(o['clarify_wrong'])}",
        f"    rejected (false rejection)   {_pct(o['rejected'])}",
        f"    precision of routed answers  {_pct(result['routed_precision'])}",
        f"  calibration error (ECE) of the best type's probability   {_pct(result['calibration_error'])}",
        f"  out-of-scope rejection (held-out out_of_scope.yaml)   {_pct(result['out_of_scope_rejection'])}",
        f"  out-of-domain rejection (bench_out_of_domain.yaml)    {_pct(result['out_of_domain_rejection'])}",
        (f"  route time per utterance: p50 {result['route_ms']['p50']:.1f} ms, "
        f"p95 {result['route_ms']['p95']:.1f} ms"),
        "",
        "  by team (held-out phrasings: type accuracy, team accuracy):",
        *(f"    {team:<16}{v['held_out']:>4}  {_pct(v['type_accuracy'])}  {_pct(v['team_accuracy'])}"
          for team, v in result["by_team"].items()),
        "",
        "  most confused type pairs (held-out, best type):",
    ]
    for c in result["confused_pairs"]:
        a, b = c["pair"]
        lines.append(f"    {c['count']:3d}  {a} <-> {b}  ({c['a_as_b']} + {c['b_as_a']})")
    if not result["confused_pairs"]:
        lines.append("    none")
    if result["out_of_domain_accepted"]:
        lines.append("  out-of-domain questions not rejected:")
        for a in result["out_of_domain_accepted"][:10]:
            got = a["intent"] or f"clarify {a['clarify'][0]} / {a['clarify'][1]}"
            lines.append(f"    {a['text'][:60]!r} -> {got} ({a['score']:.2f})")
    if "sweep" in result:
        lines += ["", "  settings sweep (fractions of held-out phrasings; ood: out-of-scope + out-of-domain):",
                  "    mfr   margin  min   thresh  right  wrong  clar+  clar-  reject  ood-rej"]
        for w in result["sweep"]:
            lines.append(f"    {w['max_false_rejection']:<5} {w['clarify_margin']:<7} {w['clarify_min']:<5} "
                         f"{w['threshold']:<7} {w['routed_right']:<6} {w['routed_wrong']:<6} "
                         f"{w['clarify_right']:<6} {w['clarify_wrong']:<6} {w['rejected']:<7} {w['ood_rejection']}")
    if "repeats" in result:
        r = result["repeats"]
        lines += ["", f"  over {r['splits']} splits (seeds {d['seed']}..{d['seed'] + r['splits'] - 1}), mean +- sd:"]
        for key, label in (("team_accuracy", "team accuracy"), ("type_accuracy", "question-type accuracy"),
                           ("false_rejection", "false rejection"),
                           ("out_of_domain_rejection", "out-of-domain rejection")):
            lines.append(f"    {label:<28}{_pct(r[key]['mean'])} +- {100 * r[key]['sd']:.1f}")
    lines.append("")
    lines.append("targets met" if result["targets_met"] else "TARGETS MISSED")
    return "\n".join(lines)


def main(cache_dir: Path, settings: RouterSettings, *, as_json: bool = False, holdout: float = 0.25,
         seed: int = SEED, sweep: bool = False, repeats: int = 1) -> int:
    from flows.knowledge import load_knowledge

    knowledge, out_of_domain = load_knowledge(), load_out_of_domain()
    result = run_intent_bench(knowledge, settings, cache_dir, out_of_domain, holdout=holdout, seed=seed, sweep=sweep)
    if repeats > 1:
        # One split of ~12 phrasings a type moves the figures by a point or two: the mean
        # over other splits says whether a change is real.
        runs = [result] + [run_intent_bench(knowledge, settings, cache_dir, out_of_domain, holdout=holdout,
                                            seed=seed + i) for i in range(1, repeats)]
        result["repeats"] = {
            key: {"mean": statistics.fmean(r[key] for r in runs), "sd": statistics.pstdev(r[key] for r in runs)}
            for key in ("team_accuracy", "type_accuracy", "false_rejection", "out_of_domain_rejection")
        }
        result["repeats"]["splits"] = repeats
        result["targets_met"] = (result["repeats"]["team_accuracy"]["mean"] >= TARGET_TEAM_ACCURACY
                                 and result["repeats"]["type_accuracy"]["mean"] >= TARGET_TYPE_ACCURACY)
    # The independent set, through the production router and the dialogue, as a caller meets them.
    from bot.bench_callers import format_caller_report, load_callers, run_caller_bench
    from bot.services import make_fallback
    from flows.engine import Keywords
    from flows.fallback import FallbackSettings

    fallback = make_fallback(FallbackSettings(), knowledge, Keywords(), cache_dir)
    result["callers"] = run_caller_bench(knowledge, load_router(knowledge, settings, cache_dir),
                                         load_callers(knowledge), fallback)
    report = format_report(result) + "\n" + "\n".join(format_caller_report(result["callers"]))
    print(json.dumps(result, indent=2, ensure_ascii=False, default=list) if as_json else report)
    return 0 if result["targets_met"] else 1
