"""Config checks: an OmegaConf error is one readable line."""

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from ltune.checks import one_line


@pytest.mark.parametrize("oc_cause", ["0", "1"])
def test_a_type_error_reads_the_same_whether_omegaconf_chains_its_cause_or_not(monkeypatch, oc_cause):
    """Bug: under coverage or a debugger (sys.gettrace set) or OC_CAUSE=1, OmegaConf attaches the
    unformatted original error as __cause__, and the line read "Value '$VALUE' of type '$VALUE_TYPE'"."""
    from dataclasses import dataclass

    @dataclass
    class Trainer:
        batch_size: int = 8

    monkeypatch.setenv("OC_CAUSE", oc_cause)
    cfg = OmegaConf.structured(Trainer)
    with pytest.raises(ValidationError) as caught:
        cfg.batch_size = "abc"
    line = one_line(caught.value)
    assert "Value 'abc' of type 'str' could not be converted to Integer" in line and "$" not in line
    assert line.startswith("batch_size: ")
