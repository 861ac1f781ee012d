"""The released bertseq2seq checkpoints: where they live, how their input is prepared, how they decode.

The architecture of every 24-layer release is `BertForSeqGenerationConfig()`'s defaults; the WMT
models use a BERT WordPiece vocabulary and separate encoder/decoder stacks. Decoding defaults follow the
paper (beam 4, GNMT length penalty alpha 0.6).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Preset:
    """One released checkpoint: where it lives, how its input is prepared, how it decodes.

    Attributes:
        name: str. The preset's name (`from_preset("roberta24_gigaword")`).
        hf_repo: str or None. The Hugging Face repo id.
        tfhub_handle: str or None. The TF Hub handle.
        tokenizer: str. `"sentencepiece"` (spiece.model) or `"wordpiece"` (vocab.txt).
        shared: bool or None. Encoder and decoder share their weights (BERTSHARE); None: encoder only.
        preprocess: str or None. The model card's input fix (`tokenizers.PREPROCESS_OPTIONS`).
        max_input_length: int. Longest input, in tokens.
        max_output_length: int. Most new tokens when decoding.
        num_beams: int. Beam size (the paper's 4).
        length_penalty: float. The paper's alpha 0.6.
        length_penalty_style: str. `"gnmt"`: the paper's penalty.
        description: str. The task.
    """

    name: str
    hf_repo: str | None
    tfhub_handle: str | None
    tokenizer: str  # "sentencepiece" (spiece.model) or "wordpiece" (vocab.txt)
    shared: bool | None  # None: encoder only
    preprocess: str | None  # input fix from the model card, see tokenizers.PREPROCESS_OPTIONS
    max_input_length: int = 512
    max_output_length: int = 128
    num_beams: int = 4
    length_penalty: float = 0.6
    length_penalty_style: str = "gnmt"
    description: str = ""

    @property
    def encoder_only(self) -> bool:
        return self.shared is None

    def generation_options(self) -> dict:
        """The decoding defaults `EncoderDecoder.generate` starts from (none for an encoder-only preset)."""
        if self.encoder_only:
            return {}
        return {"num_beams": self.num_beams, "length_penalty": self.length_penalty,
                "length_penalty_style": self.length_penalty_style, "max_new_tokens": self.max_output_length}

    def tokenizer_options(self) -> dict:
        """The model card's input preparation: preprocessing (when the card asks for one) and the longest input."""
        options = {"max_length": self.max_input_length}
        if self.preprocess is not None:
            options["preprocess"] = self.preprocess
        return options


_HUB = "https://tfhub.dev/google/bertseq2seq/"
PRESETS = {p.name: p for p in [
    Preset("roberta24_bbc", "google/roberta2roberta_L-24_bbc", _HUB + "roberta24_bbc/1", "sentencepiece", True,
           None, 512, 128, description="Extreme summarisation (XSum / BBC)"),
    Preset("roberta24_cnndm", "google/roberta2roberta_L-24_cnn_daily_mail", _HUB + "roberta24_cnndm/1",
           "sentencepiece", True, None, 512, 128, description="Summarisation (CNN / Daily Mail)"),
    Preset("roberta24_gigaword", "google/roberta2roberta_L-24_gigaword", _HUB + "roberta24_gigaword/1",
           "sentencepiece", True, "gigaword", 128, 32, description="Headline generation (Gigaword)"),
    Preset("roberta24_discofuse", "google/roberta2roberta_L-24_discofuse", _HUB + "roberta24_discofuse/1",
           "sentencepiece", True, "discofuse", 128, 128, description="Sentence fusion (DiscoFuse)"),
    Preset("roberta24_wikisplit", "google/roberta2roberta_L-24_wikisplit", _HUB + "roberta24_wikisplit/1",
           "sentencepiece", True, "wikisplit", 128, 128, description="Split and rephrase (WikiSplit)"),
    Preset("bert24_en_de", "google/bert2bert_L-24_wmt_en_de", _HUB + "bert24_en_de/1", "wordpiece", False,
           None, 128, 128, description="Translation English -> German (WMT14)"),
    Preset("bert24_de_en", "google/bert2bert_L-24_wmt_de_en", _HUB + "bert24_de_en/1", "wordpiece", False,
           None, 128, 128, description="Translation German -> English (WMT14)"),
    Preset("bert_for_seq_generation_bbc_encoder", "google/bert_for_seq_generation_L-24_bbc_encoder", None,
           "sentencepiece", None, None, 512, 0, num_beams=1, description="Encoder only (BBC pre-training)"),
]}


def list_presets(tokenizer: str | None = None, encoder_only: bool | None = None) -> dict[str, Preset]:
    """The released checkpoints by name, as KerasHub's `Class.presets`.

    Args:
        tokenizer: str or None. Only those with a `"sentencepiece"` or `"wordpiece"` tokenizer.
        encoder_only: bool or None. Only the encoder-only (True) or the encoder-decoder (False) ones.

    Returns:
        A new dict {name: `Preset`}.
    """
    return {name: p for name, p in PRESETS.items()
            if tokenizer in (None, p.tokenizer) and encoder_only in (None, p.encoder_only)}


def get_preset(name: str) -> Preset:
    """A preset by its name, its HF repo id or its TF Hub handle.

    Args:
        name: str. `"roberta24_gigaword"`, `"google/roberta2roberta_L-24_gigaword"` or
            `"https://tfhub.dev/google/bertseq2seq/roberta24_gigaword/1"`.

    Returns:
        The `Preset`.

    Raises:
        KeyError: no release has that name, listing those that do.
    """
    for preset in PRESETS.values():
        if name in (preset.name, preset.hf_repo, preset.tfhub_handle) or (
                preset.tfhub_handle and name.rstrip("/").endswith(preset.tfhub_handle[len(_HUB):].rstrip("/"))):
            return preset
    raise KeyError(f"no preset named {name!r}; known: {', '.join(PRESETS)}")
