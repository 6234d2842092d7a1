"""Word count: chunk a text on word boundaries, tokenize and count per chunk, tree-merge.

Chunk boundaries are chosen so that no word is ever cut: in a file, a cut
is placed only at an ASCII byte that cannot be part of a word, which is also
never inside a UTF-8 sequence. Tokens are ``\\b\\w+\\b`` matches, lowercased
after matching, so the result does not depend on where the chunks fall (the
test suite checks this against one serial pass over the whole text).

Three sources: a file (each task reads its own byte range), a string (split
by the builder), or Zipf-distributed text generated chunk by chunk inside
the graph from a seed.
"""

from __future__ import annotations

import functools
import os
import re
import sysconfig
from collections import Counter
from pathlib import Path

import numpy as np

import fastdag as fd

from .base import Check, Params, rng, size_parser, tree_reduce

WORD = re.compile(r"\b\w+\b")
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


# -- tasks -------------------------------------------------------------------
@fd.task
def read_chunk(path: str, start: int, stop: int) -> str:
    """Bytes [start, stop) of the file, decoded (bad UTF-8 becomes U+FFFD)."""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(stop - start).decode("utf-8", errors="replace")


@fd.task
def generate_chunk(seed: int, index: int, nbytes: int) -> str:
    """About ``nbytes`` of Zipf-distributed text: chunk ``index`` of the seeded corpus."""
    return zipf_text(nbytes, seed, index)


@fd.task
def tokenize(text: str) -> list[str]:
    """The chunk's words, lowercased one by one after matching.

    Lowercasing whole chunks first would make a few Unicode cases (a final
    sigma before punctuation) depend on where the chunk ends.
    """
    words = WORD.findall(text)
    if not words:
        return []
    return "\n".join(words).lower().split("\n")


@fd.task
def count(words: list[str]) -> Counter:
    return Counter(words)


@fd.task
def merge_counts(a: Counter, b: Counter) -> Counter:
    """A new Counter: inputs are left untouched, whichever executor shares them."""
    merged = Counter(a)
    merged.update(b)
    return merged


# -- generated text -----------------------------------------------------------
@functools.lru_cache(maxsize=8)
def vocabulary(seed: int, size: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Seeded made-up words and their Zipf (s = 1.1) probabilities.

    One word in fifty carries an accented letter, so the UTF-8 handling of
    chunk boundaries is exercised too. Cached: every chunk of a corpus uses
    the same vocabulary, and it depends on nothing but its arguments.
    """
    gen = rng(seed, 1 << 20)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    accents = np.array(list("éèàüöñç"))
    words = []
    for n in gen.integers(1, 11, size=size):
        chars = letters[gen.integers(0, len(letters), size=n)]
        if gen.random() < 0.02:
            chars[gen.integers(0, n)] = accents[gen.integers(0, len(accents))]
        words.append("".join(chars))
    weights = 1.0 / np.arange(1, size + 1) ** 1.1
    return np.array(words, dtype=object), weights / weights.sum()


def zipf_text(nbytes: int, seed: int = 0, index: int = 0) -> str:
    """Text of roughly ``nbytes`` bytes: twelve-word sentences, capitalized, one per line.

    Ends with a newline, so chunks concatenate without joining two words.
    """
    if nbytes <= 0:
        raise ValueError(f"text size must be positive, got {nbytes}")
    words, probs = vocabulary(seed)
    gen = rng(seed, index)
    drawn = words[gen.choice(len(words), size=max(1, nbytes // 6), p=probs)]
    lines = []
    for k in range(0, len(drawn), 12):
        sentence = drawn[k:k + 12]
        lines.append(" ".join([sentence[0].capitalize(), *sentence[1:]]) + ".")
    return "\n".join(lines) + "\n"


def generated_text(total_bytes: int, chunk_bytes: int, seed: int = 0) -> str:
    """The whole corpus that ``build_generated`` makes inside the graph."""
    return "".join(zipf_text(n, seed, i) for i, n in enumerate(_chunk_sizes(total_bytes, chunk_bytes)))


def _chunk_sizes(total: int, chunk: int) -> list[int]:
    if total <= 0 or chunk <= 0:
        raise ValueError(f"text size and chunk size must be positive, got {total} and {chunk}")
    return [min(chunk, total - start) for start in range(0, total, chunk)]


def stdlib_corpus(path: str | os.PathLike, megabytes: float) -> Path:
    """Write about ``megabytes`` MB of this Python's own standard-library sources to ``path``.

    Real, varied English-and-code text that every machine has, for benchmarks
    that should not depend on a download. Files are taken in sorted order
    (cycling if the library is smaller than asked) and the last one is cut
    at a line end, so the same request always gives the same bytes.
    """
    want = int(megabytes * (1 << 20))
    if want <= 0:
        raise ValueError(f"corpus size must be positive, got {megabytes} MB")
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    if not files:
        raise ValueError(f"no Python sources found under {root}")
    out = Path(path)
    written = 0
    with open(out, "wb") as f:
        while written < want:
            before = written
            for src in files:
                data = src.read_bytes()
                if written + len(data) > want:
                    data = data[:want - written]
                    data = data[:data.rfind(b"\n") + 1] or data
                f.write(data)
                written += len(data)
                if written >= want:
                    break
            if written == before:
                raise ValueError(f"the Python sources under {root} are all empty")
    return out


# -- chunking -----------------------------------------------------------------
def file_spans(path: str | os.PathLike, chunk_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``chunk_bytes`` each, cut only between words."""
    path = _existing_file(path)
    if chunk_bytes <= 0:
        raise ValueError(f"chunk size must be positive, got {chunk_bytes}")
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as f:
        while bounds[-1] + chunk_bytes < size:
            cut = _next_separator(f, bounds[-1] + chunk_bytes, size)
            if cut >= size:
                break
            bounds.append(cut)
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


def _next_separator(f, pos: int, size: int) -> int:
    """The first offset >= pos holding an ASCII byte that no word contains (or ``size``)."""
    f.seek(pos)
    while pos < size:
        block = f.read(1 << 16)
        for i, byte in enumerate(block):
            if byte < 0x80 and byte not in _WORD_BYTES:
                return pos + i
        pos += len(block)
    return size


def text_chunks(text: str, chunk_chars: int) -> list[str]:
    """``text`` in pieces of about ``chunk_chars`` characters, cut only at non-word characters."""
    if chunk_chars <= 0:
        raise ValueError(f"chunk size must be positive, got {chunk_chars}")
    nonword = re.compile(r"\W")
    chunks, start = [], 0
    while len(text) - start > chunk_chars:
        match = nonword.search(text, start + chunk_chars)
        if match is None:
            break
        chunks.append(text[start:match.start()])
        start = match.start()
    chunks.append(text[start:])
    return chunks


def _existing_file(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"text file not found: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"not a regular file: {path}")
    return path


# -- builders -----------------------------------------------------------------
def _count_tree(texts: list) -> fd.Node:
    return tree_reduce([count(tokenize(t)) for t in texts], merge_counts)


def build_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> fd.Node:
    """Word counts of a text file; each chunk is read by its own task."""
    path = _existing_file(path)
    return _count_tree([read_chunk(path, a, b) for a, b in file_spans(path, chunk_bytes)])


def build_text(text: str, chunk_chars: int = 1 << 20) -> fd.Node:
    """Word counts of a string the caller already holds."""
    return _count_tree(text_chunks(text, chunk_chars))


def build_generated(total_bytes: int, chunk_bytes: int = 1 << 20, seed: int = 0) -> fd.Node:
    """Word counts of seeded Zipf text generated chunk by chunk inside the graph."""
    sizes = _chunk_sizes(total_bytes, chunk_bytes)
    return _count_tree([generate_chunk(seed, i, n) for i, n in enumerate(sizes)])


def reference_text(text: str) -> Counter:
    """One serial pass over the whole text."""
    return count.func(tokenize.func(text))


def reference_file(path: str | os.PathLike) -> Counter:
    with open(_existing_file(path), "rb") as f:
        return reference_text(f.read().decode("utf-8", errors="replace"))


def check(result: Counter, expected: Counter) -> Check:
    words, distinct = sum(expected.values()), len(expected)
    if result == expected:
        return Check(True, f"{words} words, {distinct} distinct, counts equal the serial pass")
    wrong = sum(1 for w in set(result) | set(expected) if result.get(w) != expected.get(w))
    return Check(False, f"{wrong} of {distinct} words counted differently from the serial pass "
                        f"({sum(result.values())} words vs {words})")


def _fill(params: Params) -> Params:
    params.setdefault("size", 8 << 20)
    params.setdefault("chunk", max(1, -(-params["size"] // 8)))
    return params


parse_size = size_parser("size", ("size", "chunk"), _fill)


def build_params(params: Params) -> fd.Node:
    if params.get("input"):
        return build_file(params["input"], params["chunk"])
    return build_generated(params["size"], params["chunk"], params["seed"])


def reference_params(params: Params) -> Counter:
    if params.get("input"):
        return reference_file(params["input"])
    return reference_text(generated_text(params["size"], params["chunk"], params["seed"]))


__all__ = ["read_chunk", "generate_chunk", "tokenize", "count", "merge_counts", "zipf_text",
           "generated_text", "stdlib_corpus", "file_spans", "text_chunks", "build_file",
           "build_text", "build_generated", "reference_text", "reference_file", "check",
           "parse_size"]
