"""experiment=learning_curve: one tuning sweep per training size (conf/train_size)."""

from ltune import config as configs
from ltune.report.stats import FEWEST_PAIRS
from tests.conftest import ltune_in_process

SIZES = ["n32", "n128", "n512", "n2048"]


def test_each_size_sets_its_cap_its_held_out_slice_its_step_budget_and_its_seeds():
    seeds = []
    for option in SIZES:
        cfg = configs.compose(["experiment=learning_curve", f"train_size={option}"], hydra_config=True)
        size = int(option[1:])
        sweeper = cfg.hydra.sweeper
        assert cfg.data.max_train_samples == size
        assert cfg.data.max_heldout_samples == min(size, 500)  # a few-shot user holds out little
        assert cfg.trainer.epochs is None and cfg.trainer.patience and cfg.trainer.min_steps <= cfg.trainer.max_steps
        # Replicates are unselected, and enough for the paired test over shared seeds (shared data draws).
        assert not set(sweeper.seeds) & set(sweeper.search_seeds) and len(sweeper.seeds) >= FEWEST_PAIRS
        assert sorted(str(m) for m in str(sweeper.params.method).split(",")) == sorted(
            ["l_prefix", "l_prompt", "prefix", "prompt", "peft_lora"])
        seeds.append(len(sweeper.seeds))
    assert seeds == sorted(seeds, reverse=True) and seeds[0] > seeds[-1]  # more seeds where runs are cheap


def test_the_learning_curve_without_a_size_or_with_an_unknown_one_is_one_line(tmp_path):
    for args, said in ((["experiment=learning_curve"], "train_size"),
                       (["experiment=learning_curve", "train_size=n64"], "unknown train_size 'n64'")):
        code, _, err = ltune_in_process(["train", *args, "data=demo", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                                        tmp_path / "outputs")
        assert code == 2 and said in err and err.startswith("ltune: ") and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "sweep").exists() and not (tmp_path / "outputs").exists()
