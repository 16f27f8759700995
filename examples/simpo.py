import torch
from pydantic import Field

from align import DPOTrainer, StrictModel, dpo_loss


class SimPOTrainer(DPOTrainer):
    """SimPO: -log sigmoid(beta * (avg log pi(chosen) - avg log pi(rejected)) - gamma), no reference."""

    class Options(StrictModel):  # the recipe's trainer_options, validated before any compute
        gamma: float = Field(0.5, ge=0, description="Target reward margin.")

    def precompute_reference(self, examples, batch_size=None):
        pass  # SimPO has no reference model

    def compute_loss(self, model, batch):
        gamma = (self.options or self.Options()).gamma
        logps = self.sequence_logps(model, batch)  # [2B]: chosen rows, then rejected rows
        lengths = batch["completion_mask"][:, 1:].sum(-1).clamp_min(1)
        chosen, rejected = (logps / lengths).chunk(2)
        zero, margin = torch.zeros_like(chosen), torch.full_like(chosen, gamma)
        loss, stats = dpo_loss(chosen, rejected, zero, zero, beta=self.beta, loss_type="margin", strength=margin)
        return loss, {"rewards/accuracy": stats["accuracy"].mean().item()}
