"""The metrics a data config may ask for (``data.metrics``) and the evaluation computes: names only,
so that checking a config imports neither torch nor scikit-learn."""

METRICS = ("accuracy", "matthews_corr", "f1", "macro_f1")
