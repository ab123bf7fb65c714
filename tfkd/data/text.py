"""A generated sentiment task that needs word order and long-range context, and its tokenizer.

Sentences are one to three clauses joined by "and" or "but": "the film was not honestly very good
but the music was awful". Each clause's score is its adjective's polarity, doubled by an
intensifier ("very", "extremely", "so") and flipped by a negation ("not", "never") that may stand
several filler words before the adjective. A clause after "but" counts three times. The label is
1 when the total is positive. Bags of words cannot solve it: "not good but awful" and "good but
not awful" hold the same words.
"""

from typing import Any

import numpy as np

from tfkd._validation import check_int

POSITIVE = ("good", "great", "fine", "nice", "superb", "lovely", "brilliant", "pleasant",
            "charming", "excellent", "wonderful", "decent")
NEGATIVE = ("bad", "awful", "poor", "dull", "terrible", "boring", "weak", "dreadful", "clumsy",
            "mediocre", "tedious", "horrible")
NOUNS = ("film", "plot", "music", "acting", "ending", "script", "cast", "story", "camera",
         "dialogue", "pace", "sound")
FILLERS = ("honestly", "frankly", "overall", "really", "actually", "still", "again", "then")
INTENSIFIERS = ("very", "extremely", "so")
NEGATIONS = ("not", "never")
FUNCTION_WORDS = ("the", "was", "and", "but", "seemed", "felt")
SPECIAL = ("[PAD]", "[CLS]", "[UNK]")


class Tokenizer:
    """Words to integer ids over a fixed vocabulary: `[PAD]`=0, `[CLS]`=1, `[UNK]`=2, then words.

    Args:
        words: The vocabulary (special tokens are added first). Defaults to the sentiment task's.
    """

    def __init__(self, words: Any = None) -> None:
        if words is None:
            words = (*FUNCTION_WORDS, *NOUNS, *POSITIVE, *NEGATIVE, *FILLERS, *INTENSIFIERS,
                     *NEGATIONS)
        self.vocabulary = list(SPECIAL) + [w for w in dict.fromkeys(words) if w not in SPECIAL]
        self.ids = {word: i for i, word in enumerate(self.vocabulary)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, texts: Any, sequence_length: int) -> np.ndarray:
        """`(len(texts), sequence_length)` int32 ids: `[CLS]` first, then words, padded with 0.

        Lowercases and splits on whitespace; unknown words become `[UNK]`; long texts are cut.
        """
        check_int("sequence_length", sequence_length, minimum=2)
        out = np.zeros((len(texts), sequence_length), dtype="int32")
        for row, text in enumerate(texts):
            ids = [1] + [self.ids.get(w, 2) for w in text.lower().split()]
            ids = ids[:sequence_length]
            out[row, : len(ids)] = ids
        return out

    def decode(self, ids: Any) -> Any:
        """The words of one row of ids (padding dropped)."""
        return " ".join(self.vocabulary[i] for i in ids if i not in (0, 1))


def _clause(rng):
    """One clause's words and score."""
    noun = NOUNS[rng.integers(len(NOUNS))]
    positive = bool(rng.integers(2))
    adjective = (POSITIVE if positive else NEGATIVE)[rng.integers(len(POSITIVE))]
    score = 1.0 if positive else -1.0
    words = ["the", noun, ("was", "seemed", "felt")[rng.integers(3)]]
    if rng.random() < 0.5:
        words.append(NEGATIONS[rng.integers(2)])
        score = -score
    words += [FILLERS[i] for i in rng.integers(len(FILLERS), size=rng.integers(0, 3))]
    if rng.random() < 0.4:
        words.append(INTENSIFIERS[rng.integers(3)])
        score *= 2.0
    words.append(adjective)
    return words, score


def generate_sentiment(count: int, seed: int = 0) -> Any:
    """`count` generated sentences and their labels (1 positive, 0 negative); see the module.

    Args:
        count: Number of sentences.
        seed: Seed; the same seed gives the same sentences. Defaults to `0`.

    Returns:
        `(texts, labels)`: a list of strings and an int64 array of shape `(count,)`.
    """
    check_int("count", count, minimum=1)
    check_int("seed", seed)
    rng = np.random.default_rng(seed)
    texts: list[Any] = []
    labels: list[Any] = []
    while len(texts) < count:
        words, total = _clause(rng)
        for _ in range(rng.integers(0, 3)):
            joiner = ("and", "but")[rng.integers(2)]
            clause, score = _clause(rng)
            words += [joiner, *clause]
            total += 3.0 * score if joiner == "but" else score
        if total == 0:
            continue  # no tie: every sentence has one answer
        texts.append(" ".join(words))
        labels.append(int(total > 0))
    return texts, np.array(labels, dtype="int64")


def load_sentiment(
    train_size: int = 4000,
    test_size: int = 1000,
    sequence_length: int = 32,
    seed: int = 0,
) -> Any:
    """The generated sentiment task as token ids, split into train and test sets.

    Args:
        train_size: Training sentences. Defaults to `4000`.
        test_size: Test sentences. Defaults to `1000`.
        sequence_length: Tokens per sentence, `[CLS]` included (longer ones are cut). Defaults to
            `32`, which holds every generated sentence.
        seed: Seed; the same seed gives the same data. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: int32 ids of shape `(n, sequence_length)` and
        int64 labels; the vocabulary size is `tfkd.data.Tokenizer().vocab_size`.

    Example:
    >>> (x_train, y_train), _ = tfkd.data.load_sentiment(train_size=100, test_size=10)
    >>> x_train.shape
    (100, 32)
    """
    check_int("train_size", train_size, minimum=1)
    check_int("test_size", test_size, minimum=1)
    texts, labels = generate_sentiment(train_size + test_size, seed=seed)
    ids = Tokenizer().encode(texts, sequence_length)
    return (ids[:train_size], labels[:train_size]), (ids[train_size:], labels[train_size:])
