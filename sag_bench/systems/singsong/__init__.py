"""SingSong re-implemented in three decoder-only stages on a semantic k-means tokenizer and a residual codec.

Modules: ``config`` (presets), ``layout`` (token layouts), ``sampling`` (KV-cached range-restricted sampling),
``stages`` (the transformers), ``tokenizer`` (semantic ids and codec codes), ``system`` (the ``System``),
``train`` (per-stage training).
"""
