"""Independent references the tests (and benchmarks/ewc_overhead.py) compare the library with; not part of the library."""
import torch
from torch import nn

IGNORE_INDEX = -100   # the label the loss skips (as cl_course.train.IGNORE_INDEX, written out here on purpose)


def exact_sq_grads_bruteforce(model: nn.Module, ids: torch.Tensor, tgt: torch.Tensor) -> dict[str, torch.Tensor]:
    "Sum over the real targets of E_y[(grad log p(y|context))^2] by brute force: one backward pass per vocabulary entry."
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out = {n: torch.zeros_like(p) for n, p in params}
    for b in range(len(ids)):
        for t in (tgt[b] != IGNORE_INDEX).nonzero()[:, 0].tolist():
            lp = torch.log_softmax(model(input_ids=ids[b:b + 1, :t + 1]).logits[0, -1].float(), -1)
            for y in range(len(lp)):
                gs = torch.autograd.grad(lp[y], [p for _, p in params], retain_graph=True, allow_unused=True)
                for (n, _), g in zip(params, gs):
                    if g is not None: out[n] += lp[y].exp().detach() * g.pow(2)
    return out
