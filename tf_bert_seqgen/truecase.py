"""Cased text, spaced as written, from an uncased model's output: casing and spacing restored from the source.

An uncased WordPiece model writes "if topdown is false , the triple for a directory ..." for the source
"Topdown is false. The triple for a directory ...". `restore` turns it into "If topdown is false, the
triple for a directory ...", in the TF graph (core string ops and NormalizeUTF8 only, so an exported
SavedModel still loads with tensorflow + tensorflow_text and stays TF Serving safe):

1. Both texts are split into BERT pre-tokens (whitespace separates, punctuation and CJK ideographs stand
   alone), the source's with their original characters and whether whitespace preceded them.
2. Each output pre-token is aligned to the source pre-token with the same uncased key (lowercased, accents
   stripped as the tokenizer does) whose neighbours match best (ties: the earliest).
3. Spacing: two output pre-tokens copied from consecutive source pre-tokens keep the source's spacing
   ("bull-dog", "don't", "3.5", "(see below)"); others follow English rules: no space before , . ; : ! ? %
   ) ] } and a closing quote, none after ( [ { and an opening quote (straight double quotes alternate
   open / close), none around an apostrophe before s / t / m / d / re / ve / ll, around a hyphen between
   words, or around a point between digits.
4. Casing: a copied word takes its form in the source (names, acronyms, accents: "cafe" -> "Café") from
   an occurrence that does not open a sentence; a word the source only has at sentence starts is
   lowercased ("They" -> "they" mid-sentence) unless it is "I" or has a capital after its first letter
   ("UTC", "McGee"). Words not in the source stay as the model wrote them (lowercase). Then the first word
   of each output sentence is capitalised (if it has no capital yet).

A sentence ends at . ! ? unless a word follows without a space ("3.5", "e.g") or the point closes a
single-letter abbreviation ("e.g.", "U.S."). Shapes: b = batch, n = source pre-tokens, m = output pre-tokens.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from tf_bert_seqgen.tokenizers.wordpiece import WordPieceTokenizer

# What the BERT pre-tokenizer treats as whitespace, and as one-character pre-tokens (punctuation, CJK).
_SPACE = WordPieceTokenizer._WHITESPACE
_ISOLATED = WordPieceTokenizer._PUNCTUATION + "|" + WordPieceTokenizer._CJK
_WORD = r".*[\p{L}\p{N}].*"
_SENTENCE_END = r"[.!?]"
_CLOSING = r"[,.;:!?%)\]}\x{201D}\x{2019}]"  # also ” ’
_OPENING = r"[(\[{\x{201C}\x{2018}]"  # also “ ‘
_CONTRACTION = r"s|t|m|d|re|ve|ll"
_HASH_BUCKETS = 2 ** 62


def uncased_key(texts, strip_accents: bool = True):
    """texts [...] string -> the uncased BERT tokenizer's form of each (`WordPieceTokenizer._normalize` of
    an uncased vocabulary, without its CJK spacing): dropped control / format characters, NFD and no
    non-spacing marks when `strip_accents`, lowercase."""
    texts = tf.strings.regex_replace(texts, WordPieceTokenizer._DROPPED, "")
    if strip_accents:
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, WordPieceTokenizer._NONSPACING_MARKS, "")
    texts = tf.strings.regex_replace(texts, "\u03a3", "\u03c3")
    return tf.strings.lower(texts, encoding="utf-8")


def pretokenize(texts):
    """BERT's pre-tokenization, keeping the original characters.

    Args:
        texts: string [b].

    Returns:
        tokens: string RaggedTensor [b, (n)]: the pre-tokens as written (case and accents kept).
        space_before: bool RaggedTensor [b, (n)]: whitespace precedes the token (False for a row's first).
    """
    chars = tf.strings.unicode_split(texts, "UTF-8")  # [b, (c)]
    flat = chars.flat_values
    rows = chars.value_rowids()
    first = tf.range(tf.size(flat, out_type=tf.int64)) == tf.gather(chars.row_starts(), rows)
    is_space = tf.strings.regex_full_match(flat, _SPACE)
    isolated = tf.strings.regex_full_match(flat, _ISOLATED)
    # The previous character of the same row (roll: an empty batch has no characters to shift).
    prev_space = ~first & tf.roll(is_space, 1, axis=0)
    prev_isolated = ~first & tf.roll(isolated, 1, axis=0)
    start = ~is_space & (first | prev_space | prev_isolated | isolated)
    token_of_char = tf.cumsum(tf.cast(start, tf.int64)) - 1
    keep = ~is_space
    strings = tf.strings.unsorted_segment_join(tf.boolean_mask(flat, keep), tf.boolean_mask(token_of_char, keep),
                                               num_segments=tf.reduce_sum(tf.cast(start, tf.int64)))
    token_rows = tf.boolean_mask(rows, start)
    tokens = tf.RaggedTensor.from_value_rowids(strings, token_rows, nrows=chars.nrows())
    return tokens, tokens.with_flat_values(tf.boolean_mask(prev_space, start))


def _shift(x, k, fill=False):
    """x [b, L] (or [b, L, ...]) moved k places right along axis 1 (left for k < 0), `fill` coming in."""
    length = tf.shape(x)[1]
    pad = [[0, 0], [max(k, 0), max(-k, 0)]] + [[0, 0]] * (x.shape.rank - 2)
    padded = tf.pad(x, pad, constant_values=fill)
    return padded[:, max(-k, 0):max(-k, 0) + length]


def sentence_starts(tokens, space_before, valid):
    """The first word of each sentence.

    Args:
        tokens: string [b, L] pre-tokens (any case); space_before, valid: bool [b, L].

    Returns:
        bool [b, L]: the token is the first word-like (letter or digit) token of its row or after a
        sentence end (. ! ? not followed by a glued word, not closing a single-letter abbreviation).
    """
    word = valid & tf.strings.regex_full_match(tokens, _WORD)
    glued_word = word & ~space_before
    point = valid & tf.equal(tokens, ".")
    single_letter = valid & tf.strings.regex_full_match(tokens, r"\p{L}")
    abbreviation = point & _shift(point, 2) & _shift(single_letter & ~space_before, 1)
    end = (valid & tf.strings.regex_full_match(tokens, _SENTENCE_END) & ~_shift(glued_word, -1)
           & ~abbreviation)
    sentence = tf.cumsum(tf.cast(end, tf.int32), axis=1, exclusive=True)  # [b, L]
    batch, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
    segment = tf.range(batch)[:, None] * (length + 1) + sentence
    position = tf.broadcast_to(tf.range(length)[None, :], tf.shape(segment))
    first_word = tf.math.unsorted_segment_min(tf.where(word, position, length), segment,
                                              num_segments=batch * (length + 1))
    return word & tf.equal(position, tf.gather(first_word, segment))


def _dense(tokens, default, width):
    """RaggedTensor [b, (n)] -> [b, width] (width >= the longest row), `default` after each row."""
    return tokens.to_tensor(default_value=default, shape=tf.stack([tokens.nrows(), tf.cast(width, tf.int64)]))


def _present(tokens, width):
    """RaggedTensor [b, (n)] -> bool [b, width]: True where a row has a token."""
    return _dense(tokens.with_flat_values(tf.fill(tf.shape(tokens.flat_values), True)), False, width)


def _capitalize(words):
    """string [...] -> the first character upper-cased (UTF-8 aware)."""
    length = tf.strings.length(words, unit="UTF8_CHAR")
    first = tf.minimum(length, 1)  # "" has no first character
    head = tf.strings.substr(words, tf.zeros_like(first), first, unit="UTF8_CHAR")
    tail = tf.strings.substr(words, first, length - first, unit="UTF8_CHAR")
    return tf.strings.join([tf.strings.upper(head, encoding="utf-8"), tail])


def _english_glue(tokens, valid):
    """bool [b, m]: English writes the token without a space before it (new material's rules)."""
    word = valid & tf.strings.regex_full_match(tokens, _WORD)
    digits = valid & tf.strings.regex_full_match(tokens, r"\p{N}+")
    quote = valid & tf.equal(tokens, '"')
    quotes_before = tf.cumsum(tf.cast(quote, tf.int32), axis=1, exclusive=True)
    opening = (quote & tf.equal(quotes_before % 2, 0)) | (valid & tf.strings.regex_full_match(tokens, _OPENING))
    closing = (quote & tf.equal(quotes_before % 2, 1)) | (valid & tf.strings.regex_full_match(tokens, _CLOSING))
    apostrophe = (valid & tf.equal(tokens, "'") & _shift(word, 1)
                  & _shift(valid & tf.strings.regex_full_match(tokens, _CONTRACTION), -1))
    hyphen = valid & tf.equal(tokens, "-") & _shift(word, 1) & _shift(word, -1)
    decimal = valid & tf.equal(tokens, ".") & _shift(digits, 1) & _shift(digits, -1)
    joiner = apostrophe | hyphen | decimal
    return closing | joiner | _shift(opening | joiner, 1)


def restore(sources, outputs, strip_accents: bool = True, max_source_tokens: int | None = None):
    """Casing and spacing of `outputs` restored from `sources` (see the module docstring).

    Args:
        sources: string [b], the texts as written (the model's input).
        outputs: string [b], what an uncased model generated for them (any spacing: the output's own
            whitespace only separates pre-tokens).
        strip_accents: the tokenizer strips accents (uncased BERT does), so a source word matches its
            unaccented form.
        max_source_tokens: only the first this many source pre-tokens are looked at (the model saw no
            more than its max_input_length tokens); bounds the [b, m, n] alignment of a very long text.

    Returns:
        string [b]: the outputs cased and spaced as written; "" for an output without pre-tokens.
    """
    sources = tf.convert_to_tensor(sources, tf.string)
    outputs = tf.convert_to_tensor(outputs, tf.string)
    src, src_space = pretokenize(sources)  # [b, (n)]
    if max_source_tokens is not None:
        src, src_space = src[:, :max_source_tokens], src_space[:, :max_source_tokens]
    out, _ = pretokenize(outputs)  # [b, (m)]

    # n >= 1 (a padding column when no source has a token), so that every output token has a best match.
    n = tf.maximum(src.bounding_shape(axis=1), 1)
    m = out.bounding_shape(axis=1)

    def keys(tokens, missing, width):
        key = tf.strings.strip(uncased_key(tokens.flat_values, strip_accents))
        hashed = tf.strings.to_hash_bucket_fast(key, _HASH_BUCKETS)
        return _dense(tokens.with_flat_values(tf.where(tf.equal(key, ""), tf.constant(-1, tf.int64), hashed)),
                      missing, width)

    src_key = keys(src, -1, n)  # [b, n]; -1: padding or a token without a key, never matched
    out_key = keys(out, -2, m)  # [b, m]
    src_valid, out_valid = _present(src, n), _present(out, m)
    src_tokens, out_tokens = _dense(src, "", n), _dense(out, "", m)
    src_space = _dense(src_space, False, n)
    src_initial = sentence_starts(src_tokens, src_space, src_valid)  # [b, n]

    # Alignment: same key; neighbours that match too count (one away 4, two away 1); ties: the earliest.
    same = tf.equal(out_key[:, :, None], src_key[:, None, :]) & (out_key[:, :, None] >= 0)  # [b, m, n]
    n = tf.cast(n, tf.int32)

    def diagonal(k):  # [b, m, n]: output token j + k has the key of source token i + k
        shifted = _shift(tf.transpose(same, [0, 2, 1]), k)  # along n ...
        return tf.cast(_shift(tf.transpose(shifted, [0, 2, 1]), k), tf.int32)  # ... then along m

    context = 4 * (diagonal(1) + diagonal(-1)) + diagonal(2) + diagonal(-2)
    earliest = (n - tf.range(n))[None, None, :]

    def best(candidates, score):  # -> [b, m] index of the best candidate, [b, m] whether there is one
        ranked = tf.where(candidates, score * (n + 1) + earliest, -1)
        return tf.argmax(ranked, axis=2, output_type=tf.int32), tf.reduce_any(candidates, axis=2)

    aligned, matched = best(same, 16 + context)
    mid_sentence, has_mid_sentence = best(same & ~src_initial[:, None, :], context)

    # Spacing: the source's between tokens copied from consecutive source tokens, else English rules.
    consecutive = matched & _shift(matched, 1) & tf.equal(aligned, _shift(aligned, 1, -10) + 1)
    source_space = tf.gather(src_space, aligned, batch_dims=1)
    space_before = tf.where(consecutive, source_space, ~_english_glue(out_tokens, out_valid))
    space_before &= out_valid & ~tf.equal(tf.range(tf.cast(m, tf.int32))[None, :], 0)

    # Casing: the source's form from a mid-sentence occurrence; a sentence-initial-only form lowercased
    # unless it is "I" or has a capital after its first character; new words as the model wrote them.
    initial_form = tf.gather(src_tokens, aligned, batch_dims=1)
    keep_case = tf.equal(initial_form, "I") | tf.strings.regex_full_match(initial_form, r".+\p{Lu}.*")
    initial_form = tf.where(keep_case, initial_form, tf.strings.lower(initial_form, encoding="utf-8"))
    copied = tf.where(has_mid_sentence, tf.gather(src_tokens, mid_sentence, batch_dims=1), initial_form)
    words = tf.where(matched, copied, out_tokens)
    starts = sentence_starts(words, space_before, out_valid) & ~tf.strings.regex_full_match(words, r".*\p{Lu}.*")
    words = tf.where(starts, _capitalize(words), words)
    return tf.strings.reduce_join(tf.where(space_before, tf.strings.join([" ", words]), words), axis=1)


def needed(tokenizer) -> bool:
    """Whether a tokenizer's output needs `restore`: it lowercases (an uncased vocabulary)."""
    return bool(getattr(tokenizer, "lowercase", False))
