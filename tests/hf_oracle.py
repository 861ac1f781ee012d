"""Reference models from `transformers` (PyTorch), built with random small weights and saved in the
on-disk layout that users download, so our loaders are tested on the real format."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BertGenerationConfig, EncoderDecoderConfig, EncoderDecoderModel


def hf_stack_config(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=37, max_position_embeddings=64, hidden_act="gelu", decoder=False):
    return BertGenerationConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, hidden_act=hidden_act,
        pad_token_id=0, eos_token_id=1, bos_token_id=2, is_decoder=decoder, add_cross_attention=decoder)


def hf_encoder_decoder(seed=0, share=False, **sizes) -> EncoderDecoderModel:
    """A random HF EncoderDecoderModel. With share=True the decoder's non-cross-attention weights are
    copies of the encoder's (BERTSHARE), which is what a tied checkpoint holds."""
    torch.manual_seed(seed)
    config = EncoderDecoderConfig.from_encoder_decoder_configs(
        hf_stack_config(**sizes), hf_stack_config(decoder=True, **sizes), tie_encoder_decoder=share)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 2, 0, 1
    model = EncoderDecoderModel(config).eval()
    with torch.no_grad():
        # Random, non-zero LM-head bias and LayerNorm params so that a mix-up cannot pass unseen.
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("lm_head.bias"):
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
        if share:
            decoder_state = model.decoder.bert.state_dict()
            for name, value in model.encoder.state_dict().items():
                decoder_state[name].copy_(value)
    return model


def random_batch(rng, batch, length, vocab_size, min_length=1):
    """ids [b, len] in [3, vocab) with right padding (0) after a random length per row, and the mask."""
    ids = rng.integers(3, vocab_size, size=(batch, length))
    lengths = rng.integers(min_length, length + 1, size=batch)
    lengths[0] = length
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    return (ids * mask).astype(np.int32), mask
