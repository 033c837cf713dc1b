"""Is a question about the caller's own file ("vous avez bien reçu mon virement de
mardi ?", "je suis kiné et je comprends pas le montant de mon échéancier") or about the
rules ("je suis auto-entrepreneur, c'est quoi le plafond ?")? The first gets the rule in
short and an offer to check the file (flows/engine.py).

The `personal` patterns of flows/data/keywords.yaml catch the usual wordings; callers find
others. A logistic regression on e5 vectors learns the difference from examples written
for it (flows/data/own_file/examples.yaml: the caller's own situation against general
questions, many of them with the caller's context first), apart from the question types'
phrasings and from the caller bench; the bench measures it (`callbot bench intents`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.binary_text_model import BinaryTextModel, build_binary_model
from flows.knowledge import DATA_DIR, DataError

EXAMPLES = DATA_DIR / "own_file" / "examples.yaml"
TRAINING_VERSION = 1
L2 = 1e-3


def load_examples(path: Path = EXAMPLES) -> tuple[list[str], list[str]]:
    """(questions about one's own file, general questions)."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
        own, general = [str(t) for t in data["own_file"]], [str(t) for t in data["general"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise DataError(f"{path.name}: {e}") from e
    if not own or not general:
        raise DataError(f"{path.name}: needs examples of both kinds")
    return own, general


def build_own_file_model(cache_dir: Path, *, force: bool = False) -> BinaryTextModel:
    """`probability(text)`: the question is about the caller's own file."""
    own, general = load_examples()
    return build_binary_model("own-file", own, general, cache_dir, l2=L2, version=TRAINING_VERSION, force=force)
