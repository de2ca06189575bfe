import dataclasses
from typing import List

from ltune.checks import Choice, positive_int, require
from ltune.methods.config import VirtualTokensConfig


class PrefixInit(Choice):
    random = "random"  # N(0, 1) keys and values (P-tuning v2, peft)
    text = "text"  # the frozen model's own keys/values of init_text's first P tokens (Li & Liang 2021)


#: Neutral words whose keys/values start a prefix with method.init=text: long enough for P up to
#: about 40 under any tokenizer, and about no task.
INIT_TEXT = ("The following text was written by a person and is shown here as it was written, without any "
             "change to its words, so that it can be read in full and understood by anyone who reads it "
             "from its beginning to its end.")


@dataclasses.dataclass
class PrefixConfig(VirtualTokensConfig):
    """Prefix tuning (Li & Liang 2021; P-tuning v2): learned past keys/values in every layer."""

    name: str = "prefix"
    lr: float = 3e-2  # best mean held-out accuracy of lr_search in studies/offline_table/tuning.json
    lr_search: List[float] = dataclasses.field(default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2])
    #: Produce the prefix through an MLP (Li & Liang) instead of learning it directly (P-tuning v2 default).
    reparameterize: bool = False
    reparam_hidden: int = 512
    #: How the prefix starts. random: the default, as P-tuning v2 and peft. text: as the model's own
    #: keys/values of init_text, so that the frozen model first reads its input as it would after
    #: that text (a random prefix can wreck a decoder's features before any training; studies/offline_table_smollm2/findings.md).
    init: PrefixInit = PrefixInit.random
    init_text: str = INIT_TEXT

    def __post_init__(self):
        super().__post_init__()
        positive_int("method.reparam_hidden", self.reparam_hidden)
        require(not (self.init == PrefixInit.text and self.reparameterize),
                "method.init=text sets the prefix itself, which method.reparameterize=true produces through an "
                "MLP; use one of them")
        require(bool(self.init_text.strip()), "method.init_text is empty; give the words whose keys/values start the prefix")
