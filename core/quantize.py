"""int8 weights for a model's Linear layers, the same way wherever the project quantizes."""
from __future__ import annotations

import warnings


def quantize_int8(model):
    """Linear weights to int8 per output channel, activations quantized per call (torch's
    dynamic quantization). On a CPU it reads a quarter of the weights per step."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch points eager quantization users at torchao; it still works
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
