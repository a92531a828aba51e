"""Everything that turns raw exercise 06 rows into probabilities.

Serving (what the inference server needs): :mod:`~modeling.schema`,
:mod:`~modeling.cleaning`, :mod:`~modeling.learners`, :mod:`~modeling.stack`,
:mod:`~modeling.bundle` and :mod:`~modeling.predictor`. Training (files, cross-validation,
selection, tuning, evaluation, the command line) is :mod:`modeling.training`, which
serving never imports. Knows nothing of the transport (gRPC, HTTP) that serves it.
"""
