"""studies/decoder_best/scripts/best_pair.py: the decisive pair by the plan's rule, from held-out scores only."""

import json

import pytest

from studies.decoder_best.scripts.best_pair import best_pair


def write(sweep, folder, method, heldout, dev):
    run = sweep / "final" / folder
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"method": method, "selection": {"score": heldout, "accuracy": heldout},
                                                  "dev": {"accuracy": dev}}))


def test_the_l_method_with_the_better_held_out_replicates_and_its_twin(tmp_path):
    for seed in (1, 2):
        write(tmp_path, f"l_prefix_s{seed}", "l_prefix", 0.70, 0.95)  # a better dev figure is never read
        write(tmp_path, f"l_prompt_s{seed}", "l_prompt", 0.75, 0.50)
        write(tmp_path, f"l_prefix_contrast_objective-pairs_s{seed}", "l_prefix", 0.99, 0.99)  # contrasts left out
    assert best_pair(tmp_path) == ("l_prompt", "prompt")


def test_both_l_methods_are_needed(tmp_path):
    write(tmp_path, "l_prefix_s1", "l_prefix", 0.70, 0.7)
    with pytest.raises(SystemExit, match="both L-methods"):
        best_pair(tmp_path)
