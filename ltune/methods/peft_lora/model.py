"""peft's LoRA (feature-extraction task) on the frozen model, read with the same pooling and the
same K-way head as prompt and prefix tuning. Trainable: the low-rank updates A (r x in) and B
(out x r) of each adapted projection, and the head (d*K + K).

LoRA changes the model's layers in place: a backbone it adapted is never reused by another run.
"""

from __future__ import annotations

from ltune.backbone import Backbone
from ltune.errors import LtuneError
from ltune.methods.base import KWayMethod


class PeftLora(KWayMethod):
    modifies_backbone = True

    def __init__(self, backbone: Backbone, config, label_texts):
        super().__init__(backbone, config, label_texts)
        from peft import LoraConfig, TaskType, get_peft_model

        targets = list(config.target_modules or backbone.arch.lora_targets)
        present = {name.rsplit(".", 1)[-1] for name, _ in backbone.model.named_modules()}
        missing = [t for t in targets if t not in present]
        if missing:
            raise LtuneError(f"method.target_modules {missing} are not modules of this {backbone.model.config.model_type} "
                             f"model; e.g. {', '.join(sorted(p for p in present if 'proj' in p or 'query' in p)[:8])}")
        lora = LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=config.r, lora_alpha=config.alpha,
                          lora_dropout=config.dropout, target_modules=targets, bias="none")
        self.peft_model = get_peft_model(backbone.model, lora)
        self.targets = targets
        self.add_head()

    def label_scores(self, batch):
        # The adapted layers live inside the backbone's model: its forward now includes them.
        pooled = self.backbone.encode(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return self.head(pooled)

    def paper_trainable_params(self) -> int:
        """LoRA's count (no paper formula): r x (in + out) for every adapted linear map, plus the
        K-way head, from the adapted modules' shapes."""
        d, k, r = self.backbone.hidden_size, self.num_labels, self.config.r
        adapted = [m for name, m in self.backbone.model.named_modules()
                   if name.rsplit(".", 1)[-1] in self.targets and hasattr(m, "base_layer")]
        return sum(r * (m.base_layer.in_features + m.base_layer.out_features) for m in adapted) + d * k + k
