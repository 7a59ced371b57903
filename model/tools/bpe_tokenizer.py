#!/usr/bin/python3
"""Byte-level BPE in pure Python, saved as a Hugging Face ``tokenizer.json``.

The format and the algorithm are GPT-2's: GPT-2's bytes-to-unicode table,
GPT-2's pre-tokenization pattern, merges ranked in the order they were
learned, the ``<|endoftext|>`` special token as the last id.  The file loads
in the Rust ``tokenizers`` library (and so in DJL's HuggingFaceTokenizer and
in ``transformers``' GPT2TokenizerFast).

Ids: 0..255 are the 256 byte tokens in GPT-2's order, 256.. the merges in the
order learned, and ``<|endoftext|>`` is ``vocab_size - 1``.

Usage (from the repository root); with the defaults this writes the same file
as the tokenizer.json that train.py ships:
    /usr/bin/python3 model/tools/bpe_tokenizer.py --vocab-size 1024 --out /tmp/tokenizer.json
"""

import argparse
import collections
import json

try:  # Debian: python3-regex.  GPT-2's exact pattern needs \\p{..} classes.
    import regex as _re
    GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+"""
                    r"""| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
except ImportError:  # close approximation with the standard library
    import re as _re
    GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+"""
                    r"""| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")

PRETOKENIZE = _re.compile(GPT2_PATTERN)
EOT = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = (list(range(ord("!"), ord("~") + 1))
          + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, [chr(c) for c in cs]


_BS, _CS = bytes_to_unicode()
BYTE_ENCODER = dict(zip(_BS, _CS))
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}
BYTE_TOKENS = _CS  # in id order, as in GPT-2's vocab


def pretokenize(text):
    """Splits text like GPT-2 and maps each piece to byte-level characters."""
    return ["".join(BYTE_ENCODER[b] for b in piece.encode("utf-8"))
            for piece in PRETOKENIZE.findall(text)]


def train_bpe(texts, vocab_size, log=None):
    """Learns merges until the vocab (bytes + merges + <|endoftext|>) is full.

    Ties between equally frequent pairs go to the smaller pair (as strings),
    so the result is deterministic.
    """
    num_merges = vocab_size - 256 - 1
    freqs = collections.Counter()
    for t in texts:
        freqs.update(pretokenize(t))
    words = [list(w) for w in freqs]
    counts = [freqs[w] for w in freqs]
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)  # pair -> indices of words
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_counts[p] += counts[i]
            where[p].add(i)
    merges = []
    for step in range(num_merges):
        if not pair_counts:
            break
        best = min(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        a, b = best
        merged = a + b
        merges.append(best)
        for i in sorted(where.pop(best, ())):
            w = words[i]
            c = counts[i]
            for p in zip(w, w[1:]):
                pair_counts[p] -= c
                if pair_counts[p] <= 0:
                    del pair_counts[p]
            out = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += c
                where[p].add(i)
        if log and (step + 1) % 200 == 0:
            log("  merge %d: %r" % (step + 1, merged))
    return merges


class ByteLevelBPE:
    """Encoder/decoder equivalent to the tokenizer.json written below."""

    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.vocab = {tok: i for i, tok in enumerate(BYTE_TOKENS)}
        for a, b in self.merges:
            self.vocab[a + b] = len(self.vocab)
        self.eot_id = len(self.vocab)
        self.vocab[EOT] = self.eot_id
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self._cache = {}

    @property
    def vocab_size(self):
        return len(self.vocab)

    def _bpe(self, word):
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self.ranks.get(p, 1 << 30), k)
                      for k, p in enumerate(zip(parts, parts[1:]))]
            rank, _ = min(ranked)
            if rank == 1 << 30:
                break
            a, b = self.merges[rank]
            out, j = [], 0
            while j < len(parts):
                if j + 1 < len(parts) and parts[j] == a and parts[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            parts = out
        ids = [self.vocab[p] for p in parts]
        self._cache[word] = ids
        return ids

    def encode(self, text):
        """Like tokenizers' encode: <|endoftext|> in the text is one token."""
        ids = []
        chunks = text.split(EOT)
        for k, chunk in enumerate(chunks):
            if k:
                ids.append(self.eot_id)
            for w in pretokenize(chunk):
                ids.extend(self._bpe(w))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            tok = self.id_to_token[int(i)]
            if tok == EOT:
                out.extend(EOT.encode("utf-8"))
            else:
                out.extend(BYTE_DECODER[c] for c in tok)
        return out.decode("utf-8", errors="replace")

    def to_tokenizer_json(self):
        byte_level = {"add_prefix_space": False, "trim_offsets": True,
                      "use_regex": True}
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [{
                "id": self.eot_id, "content": EOT, "single_word": False,
                "lstrip": False, "rstrip": False, "normalized": True,
                "special": True,
            }],
            "normalizer": None,
            "pre_tokenizer": dict(type="ByteLevel", **byte_level),
            "post_processor": dict(type="ByteLevel", add_prefix_space=True,
                                   trim_offsets=False, use_regex=True),
            "decoder": dict(type="ByteLevel", add_prefix_space=True,
                            trim_offsets=True, use_regex=True),
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": "",
                "end_of_word_suffix": "",
                "fuse_unk": False,
                "byte_fallback": False,
                "vocab": self.vocab,
                "merges": ["%s %s" % m for m in self.merges],
            },
        }

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_tokenizer_json(), f, ensure_ascii=False,
                      indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                  for m in data["model"]["merges"]]
        tok = cls(merges)
        if tok.vocab != data["model"]["vocab"]:
            raise ValueError("vocab in %s does not match its merges" % path)
        return tok


def main():
    import sys
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_corpus
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    docs = make_corpus.make_corpus(args.docs, args.seed)
    merges = train_bpe(docs, args.vocab_size, log=print)
    tok = ByteLevelBPE(merges)
    tok.save(args.out)
    print("vocab %d, eot id %d -> %s" % (tok.vocab_size, tok.eot_id, args.out))


if __name__ == "__main__":
    main()
