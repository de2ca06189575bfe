"""ltune: an experiment runner for L-Tuning (label tuning for prompt and prefix tuning).

See README.md for the commands; the specification of the methods is in the paper
(arXiv 2402.01643) as summarised in docs and the method folders.
"""

__version__ = "0.1.0"
