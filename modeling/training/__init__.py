"""Training-only code: reading files, cross-validation, column selection, tuning, reports.

Nothing under :mod:`modeling` outside this subpackage imports it, so the inference image
ships without it (and without pandas, scikit-learn, scipy and optuna).
"""
