"""`python -m tf_bert_seqgen.cli ...`, the same as `tf-bert-seqgen ...`."""

from tf_bert_seqgen.cli import main

main()
