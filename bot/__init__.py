"""The callbot server: calls, text channel, store, consoles, CLI."""

import os

# Before numpy is first imported (BLAS reads it once): our matrix products are small
# (one utterance against the phrasings), and OpenBLAS's idle threads spinning after each
# one stole the cores from the e5 and Whisper engines' own threads: routing took 110 ms
# per utterance instead of 11 on 2 cores. Set it to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
