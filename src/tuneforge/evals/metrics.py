"""Text-similarity metrics of the ``text_similarity`` grader, each from an established library.

fuzzy_match: rapidfuzz (normalised Indel ratio); bleu: sacrebleu's sentence BLEU; gleu and meteor: NLTK;
rouge_1..rouge_5 and rouge_l: Google's rouge-score (F-measure, stemming on); cosine: the bundled
embeddings model. All scores are in [0, 1]. The libraries load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4",
           "rouge_5", "rouge_l")


def fuzzy_match(output: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.ratio(output, reference) / 100.0


def bleu(output: str, reference: str) -> float:
    import sacrebleu

    # effective order: a short sentence without 4-gram matches still gets a meaningful score
    return min(1.0, sacrebleu.sentence_bleu(output, [reference], use_effective_order=True).score / 100.0)


def _tokens(text: str) -> list[str]:
    import re

    return re.findall(r"\w+|[^\w\s]", text.lower())


def gleu(output: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    return float(sentence_gleu([_tokens(reference)], _tokens(output)))


class _NoSynonyms:
    """Stands in for WordNet when its data is not installed: METEOR then matches exact words and
    stems only (its synonym stage finds nothing) instead of failing."""

    @staticmethod
    def synsets(*_args, **_kwargs) -> list:
        return []


@lru_cache(maxsize=1)
def _wordnet():
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet
    except LookupError:  # nltk.download('wordnet') not run: no synonyms, still a METEOR score
        return _NoSynonyms()


def meteor(output: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    return float(meteor_score([_tokens(reference)], _tokens(output), wordnet=_wordnet()))


@lru_cache(maxsize=8)
def _rouge(kind: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)


def rouge(kind: str) -> Callable[[str, str], float]:
    name = "rougeL" if kind == "l" else f"rouge{kind}"

    def score(output: str, reference: str) -> float:
        return float(_rouge(name).score(reference, output)[name].fmeasure)

    return score


def cosine(embed: Callable[[list[str]], np.ndarray], output: str, reference: str) -> float:
    vectors = embed([output, reference])  # unit vectors
    return float(np.clip(float(np.dot(vectors[0], vectors[1])), -1.0, 1.0))


def lexical(metric: str) -> Callable[[str, str], float]:
    """Every metric but cosine (which needs the embeddings model)."""
    if metric.startswith("rouge_"):
        return rouge(metric.removeprefix("rouge_"))
    return {"fuzzy_match": fuzzy_match, "bleu": bleu, "gleu": gleu, "meteor": meteor}[metric]
