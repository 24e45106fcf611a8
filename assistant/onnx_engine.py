"""int4 weights served by ONNX Runtime GenAI, behind the same `generate` call as a transformers model.

Decoding a small model on a CPU is bound by reading its weights once per token: int4 weights are
an eighth of fp32's, and ONNX Runtime's fused kernels leave little of the per-layer overhead that
PyTorch's eager mode adds (`helpdesk bench generate` measures both against plain `generate`). A
checkpoint (the base model, or the base with an adapter merged in) is exported once with
onnxruntime-genai's model builder into a folder of its own; `OnnxInt4Model.generate` then decodes
with it token by token, so the project's own logits processors (the repetition penalty that
spares the prompt), stopping criteria and streamers work as they do with transformers.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelUnavailable

log = logging.getLogger(__name__)
READY = "helpdesk-onnx-ready"


def available() -> bool:
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError:
        return False
    return True


def export_int4(checkpoint: Path, out: Path, threads: int) -> Path:
    """`checkpoint` (a transformers model folder) as an int4 ONNX model in `out`, built once.
    Written beside, then moved into place: a killed export leaves nothing half-built to load."""
    if (out / READY).exists():
        return out
    log.info("exporting %s to int4 ONNX in %s (once)", checkpoint, out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint), "-o", str(partial),
               "-p", "int4", "-e", "cpu", "-c", str(partial / "cache"),
               # int8 arithmetic on the int4 weights: the faster CPU kernels.
               "--extra_options", "int4_accuracy_level=4"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0 or not (partial / "genai_config.json").exists():
        shutil.rmtree(partial, ignore_errors=True)
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
        raise ModelUnavailable(f"cannot export {checkpoint} to ONNX int4: {' | '.join(tail)}")
    shutil.rmtree(partial / "cache", ignore_errors=True)
    config_path = partial / "genai_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # Left to itself ONNX Runtime chose fewer threads here: prefill ran at half the speed.
    options = config["model"]["decoder"].setdefault("session_options", {})
    options.update(intra_op_num_threads=threads, inter_op_num_threads=1)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    (partial / READY).write_text("int4\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


class OnnxInt4Model:
    """An exported model, with the part of transformers' `generate` signature the generator and
    the benchmarks use: one row at a time (the generator groups batches by row)."""

    def __init__(self, folder: Path, eos_token_id: int | None) -> None:
        import onnxruntime_genai as og

        og.disable_telemetry_events()
        try:
            self.model = og.Model(str(folder))
        except Exception as exc:  # onnxruntime_genai raises its own error types
            raise ModelUnavailable(f"cannot load the ONNX model in {folder}: {exc}") from exc
        self.eos_token_id = eos_token_id

    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 20, min_new_tokens: int = 0,
                 do_sample: bool = False, temperature: float = 1.0, repetition_penalty: float = 1.0,
                 streamer=None, stopping_criteria=None, logits_processor=None, pad_token_id=None,
                 **unused: Any):
        import onnxruntime_genai as og
        import torch
        from transformers import RepetitionPenaltyLogitsProcessor

        if input_ids.shape[0] != 1:
            if streamer is not None or stopping_criteria:
                raise ValueError("the ONNX engine streams one row at a time")
            # Rows one after another (the benchmark's batch of two): no shared weight reads here.
            for i in range(input_ids.shape[0]):
                self.generate(input_ids[i:i + 1], None if attention_mask is None else attention_mask[i:i + 1],
                              max_new_tokens, min_new_tokens, do_sample, temperature, repetition_penalty,
                              logits_processor=logits_processor)
            return None
        prompt = input_ids[0]
        if attention_mask is not None:
            prompt = prompt[attention_mask[0].bool()]  # a left-padded row without its padding
        ids = prompt.tolist()
        processors = list(logits_processor or [])
        if repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(float(repetition_penalty)))
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + max_new_tokens, do_sample=False)
        generator = og.Generator(self.model, params)
        if streamer is not None:
            streamer.put(torch.tensor([ids]))
        generator.append_tokens(ids)
        sequence = torch.tensor([ids])
        try:
            for step in range(max_new_tokens):
                logits = np.asarray(generator.get_logits(), dtype=np.float32).reshape(1, -1)
                scores = torch.from_numpy(logits)
                for processor in processors:
                    scores = processor(sequence, scores)
                if step < min_new_tokens and self.eos_token_id is not None:
                    scores[:, self.eos_token_id] = -float("inf")
                if do_sample:
                    probs = torch.softmax(scores / max(temperature, 1e-5), dim=-1)
                    token = int(torch.multinomial(probs, 1)[0, 0])
                else:
                    token = int(scores.argmax(dim=-1)[0])
                # The engine appends the token its logits make likeliest: leave only the chosen one.
                forced = np.full_like(logits, -np.inf)
                forced[0, token] = 0.0
                generator.set_logits(forced)
                generator.generate_next_token()
                sequence = torch.cat([sequence, torch.tensor([[token]])], dim=-1)
                if streamer is not None:
                    streamer.put(torch.tensor([token]))
                if token == self.eos_token_id:  # never before min_new_tokens: masked above
                    break
                if stopping_criteria and any(bool(torch.as_tensor(c(sequence, scores)).any())
                                             for c in stopping_criteria):
                    break
        finally:
            if streamer is not None:
                streamer.end()
        return sequence
