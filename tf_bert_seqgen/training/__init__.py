"""Fine-tuning with Keras: the paper's recipe (Rothe et al. 2020) on `model.compile` + `model.fit`.

    model = EncoderDecoder.from_encoder_decoder_pretrained(bert_dir, bert_dir, share=True)  # BERTSHARE
    tokenizer = load_tokenizer(bert_dir)
    model.compile(make_optimizer(hidden_size=model.config.decoder.hidden_size, warmup_steps=1000))
    model.fit(make_dataset(pairs, tokenizer, batch_size=32, shuffle=True, repeat=True,
                           eos_token_id=model.config.decoder.eos_token_id), steps_per_epoch=..., epochs=...)
    evaluate_generation(model, tokenizer, dev_pairs)  # ROUGE / BLEU / SARI / exact match + predictions

`finetune` wraps all of it (distribution strategy, checkpoints with resume, TensorBoard, dev metrics,
`save_pretrained` + `export_saved_model`); `tf-bert-seqgen finetune` is its command line
(`tf_bert_seqgen.cli.train`).

What the model learns from: a batch is `(features, labels)` with features = {"input_ids" [b, s],
"attention_mask" [b, s], "labels" [b, t]} and labels [b, t] (a bare features dict works too). The target
is the tokenized text followed by the model's eos; `EncoderDecoder.call` makes the decoder inputs by
shifting the labels right behind the start token, so users only ever give (source, target) text pairs.
The loss is token cross-entropy with pad ignored (`losses.sequence_cross_entropy`).

Shapes: b = batch, s = source length, t = target length.

Modules: `optim` (schedule, Adam / AdamW, make_optimizer), `data` (pairs, make_dataset), `evaluate`
(generation, metrics, the SavedModel runner), `init` (init specs, build_model), `run` (finetune).
"""

from tf_bert_seqgen.export import EXPORT_TOKENIZER_DIR
from tf_bert_seqgen.fit_hooks import TrainingHooks
from tf_bert_seqgen.losses import SequenceCrossEntropy
from tf_bert_seqgen.training.data import (
    as_pairs,
    default_bucket_boundaries,
    inserted_token_ids,
    make_dataset,
    read_pairs,
)
from tf_bert_seqgen.training.evaluate import (
    GenerationEvaluation,
    as_tokenizer_writes,
    evaluate_generation,
    float32_model,
    generate_texts,
    predict,
    score_predictions,
)
from tf_bert_seqgen.training.init_specs import (
    build_model,
    check_cross_attention,
    load_init_tokenizer,
    parse_init,
)
from tf_bert_seqgen.training.optim import (
    ADAM_BETA_1,
    ADAM_BETA_2,
    ADAM_EPSILON,
    Adam,
    AdamW,
    PerUpdateSchedule,
    WarmupRsqrtDecay,
    make_optimizer,
)
from tf_bert_seqgen.training.run import (
    HistoryRows,
    StopAtStep,
    TrainingConfig,
    finetune,
    freeze_word_embeddings,
    is_chief,
    weights_digest,
    worker_dir,
)

__all__ = [
    "ADAM_BETA_1", "ADAM_BETA_2", "ADAM_EPSILON", "Adam", "AdamW", "EXPORT_TOKENIZER_DIR",
    "GenerationEvaluation", "HistoryRows", "PerUpdateSchedule", "SequenceCrossEntropy", "StopAtStep",
    "TrainingConfig", "TrainingHooks", "WarmupRsqrtDecay", "as_pairs", "as_tokenizer_writes", "build_model",
    "check_cross_attention", "default_bucket_boundaries", "evaluate_generation",
    "finetune", "float32_model", "freeze_word_embeddings", "generate_texts", "inserted_token_ids", "is_chief",
    "load_init_tokenizer", "make_dataset", "make_optimizer", "parse_init", "predict", "read_pairs",
    "score_predictions", "weights_digest", "worker_dir",
]
