"""Typed settings: `helpdesk.yaml` plus `HELPDESK_*` environment overrides.

Unknown keys and bad values stop start-up with a message that names the key
(nanoGPT-style strictness: a key that does nothing is a bug waiting to happen).
Nested keys are overridden with a double underscore:
`HELPDESK_MODEL__DEVICE=cpu` sets `model.device`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError

ENV_PREFIX = "HELPDESK_"
# Environment variables with our prefix that are not settings keys.
ENV_NOT_SETTINGS = {"HELPDESK_CONFIG", "HELPDESK_VAULT_KEY", "HELPDESK_CRASH_AT"}  # the last: core.faults
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Strict):
    name: str = Field(DEFAULT_MODEL_NAME, description="Name recorded with every exchange.")
    backend: Literal["local", "openai"] = Field(
        "local", description="local: transformers in process; openai: an OpenAI-compatible server (vLLM, "
        "llama.cpp's server, Ollama) at base_url.")
    base_url: str | None = Field(None, description="The server's API root, e.g. http://localhost:8000/v1.")
    served_model: str | None = Field(None, description="The base model's name on that server (default: name). "
                                     "A promoted adapter is asked for by its version, as vLLM names LoRA modules.")
    api_key_env: str = Field("HELPDESK_OPENAI_API_KEY", description="The environment variable holding the "
                             "server's API key, if it needs one (the key itself never sits in a settings file).")
    path: str | None = Field(
        None,
        description="A local transformers checkpoint directory. Empty: the packaged "
        "SmolLM2-135M-Instruct, converted once from GGUF into the data directory.",
    )
    device: str = Field("auto", description="auto (GPU when present), cpu, cuda, cuda:1, mps")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    quantization: Literal["auto", "none", "int8", "int4"] = Field(
        "auto", description="auto: int4 on a CPU (where onnxruntime-genai is installed), none on a GPU. "
        "int8: the generator's linear layers in int8 (CPU only). Faster alone "
        "(`helpdesk bench generate`), but other threads' torch work slows it in served turns "
        "(`helpdesk bench turns`); int4: the model (each adapter merged in) exported once to int4 "
        "ONNX and decoded by ONNX Runtime GenAI (CPU only); README, Generation speed.")
    max_new_tokens: int = Field(160, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 means greedy decoding.")
    repetition_penalty: float = Field(1.15, ge=1.0, le=2.0, description="Small models loop without it.")
    penalize_prompt: bool = Field(
        False, description="true: the repetition penalty counts the prompt's tokens too (transformers' own "
        "way), which pushes the model off the very words of its passages; false: only the answer's own.")
    history_turns: int = Field(3, ge=0, le=50, description="Earlier turns sent to the model.")
    answer_mode: Literal["generate", "extractive", "auto"] = Field(
        "auto", description="generate: the model's answer, as it passes the output checks; extractive: the "
        "passages' best sentences, cited; auto: the model's answer when every sentence of it is grounded "
        "and `auto_trust` trusts the model that serves, else the extractive one.")
    auto_trust: Literal["gate", "groundedness"] = Field(
        "gate", description="When `auto` asks the model at all. gate: only when the adapter that serves beat "
        "the extractive answers on the evaluation gate's held-out questions (the base model never has, so "
        "it is not asked and the extractive answer shows at once); groundedness: always, its answer shown "
        "whenever every sentence of it is grounded (for a model you measured with `helpdesk eval answers`).")
    context_sentences: int = Field(
        6, ge=0, le=50, description="The model's prompt holds the passages cut to this many sentences that "
        "bear most on the question (and each passage's best one); 0: the passages whole. Changing it changes "
        "the prompt adapters were trained on.")
    extractive_sentences: int = Field(3, ge=1, le=5, description="Most sentences in an extractive answer.")
    extractive_min_support: float = Field(
        0.625, ge=-1.0, le=3.0, description="Under this best-sentence score the passages do not answer the "
        "question: the assistant says it does not know and offers a human.")
    extractive_unknown_penalty: float = Field(
        0.2, ge=0.0, le=3.0, description="Taken off that score for each noun or adjective of the question "
        "that no document of the knowledge base holds: a question about something the articles never "
        "name is not answered from them. 0 turns it off.")
    sentence_model: str = Field(
        "mpnet", description="The embedding model whose cosine the extractive answers' sentence ranker, the "
        "support and hybrid+rerank read: "
        "mpnet (all-mpnet-base-v2 in fp32, which `make` installs), kb (the knowledge base's own embedder) or a "
        "sentence-transformers folder. The ranker must have been trained with the same one (its file says which).")
    extractive_ranker: str = Field(
        "default", description="The sentence ranker's weights: default (the shipped ones, trained on "
        "questions about the sample knowledge base), a path to a file that `python -m "
        "retrieval.ranker_training` wrote, or none (a fixed blend of the same features).")


class RetrievalSettings(_Strict):
    collection: str = Field("helpdesk", min_length=3, max_length=63)
    embedding_device: str = "cpu"
    embedding_precision: Literal["auto", "fp32", "int8"] = Field(
        "auto", description="Knowledge-base vectors. auto: int8 on a CPU (about 1.5x the ingestion "
        "throughput, one sample question of 99 lower at hit@1 and hit@5), fp32 on a GPU. A collection keeps the precision it was "
        "embedded with: after changing it, run `helpdesk docs reembed`.")
    embedding_process: bool = Field(
        True, description="Ingests of more than one batch embed in child processes, beside the writes.")
    embedding_workers: int = Field(
        0, ge=0, le=16, description="Embedding processes for those ingests. 0: on a CPU one single-thread "
        "process per core, up to 4 (each holds a copy of the model); on a GPU one.")
    k: int = Field(4, ge=1, le=50, description="Chunks retrieved per turn.")
    mode: Literal["vector", "bm25", "hybrid", "hybrid+rerank"] = Field(
        "hybrid+rerank", description="hybrid: cosine + bm25_weight x scaled BM25; hybrid+rerank: its 10 best "
        "reordered by each chunk's best sentence under model.sentence_model.")
    rerank_weight: float = Field(0.5, ge=0.0, le=10.0, description="hybrid+rerank: weight of the best sentence.")
    bm25_weight: float = Field(0.1, ge=0.0, le=10.0, description="Hybrid: weight of scaled BM25 next to cosine.")
    chunk_size: int = Field(900, ge=100, le=20000, description="Characters per chunk.")
    chunk_overlap: int = Field(120, ge=0, le=5000)
    min_score: float = Field(
        0.25, ge=-1.0, le=1.0,
        description="Cosine similarity below which a chunk is not used as context.",
    )
    max_file_mb: float = Field(25.0, gt=0)
    redact_entities: list[str] = Field(
        ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
         "ORDER_NUMBER", "CUSTOMER_ID"],
        description="PII redacted from documents before embedding (policy entities only). "
        "PERSON and LOCATION are left out by default: on help articles the NER model "
        "mistakes headings for names, and articles name places on purpose.",
    )
    question_memory: str = Field(
        "sample", description="Labelled questions that say which article answers a question like them, or that "
        "none does (`retrieval.memory`): sample (the ones shipped about the sample knowledge base), paths to "
        "JSONL files in the evaluation's question format (comma-separated), or none.")
    memory_from_votes: bool = Field(
        True, description="Agents' up-votes label questions too: a conversation's first question, with the "
        "article its answer came from, or as not covered where the answer was \"I don't know\".")
    memory_similarity: float = Field(
        0.7, ge=0.0, le=1.0, description="Cosine at or above which a first question is taken as the labelled "
        "one closest to it.")
    chroma_host: str | None = Field(None, description="Set to use a Chroma server instead of the embedded store.")
    chroma_port: int = 8000

    @property
    def precision(self) -> Literal["fp32", "int8"]:
        """The knowledge base's embedding precision, `auto` resolved for the device."""
        if self.embedding_precision == "auto":
            return "int8" if self.embedding_device == "cpu" else "fp32"
        return self.embedding_precision


class GuardrailSettings(_Strict):
    policy: str | None = Field(None, description="Policy YAML; empty: the packaged default policy.")
    vault_key_file: str | None = Field(
        None, description="Pseudonym vault key file; empty: <home>/vault.key. HELPDESK_VAULT_KEY wins."
    )
    vault_ttl_hours: float = Field(24.0, gt=0, description="A conversation's pseudonyms are forgotten after this.")
    spacy_model: str = Field("helpdesk-ner", description="helpdesk-ner: spaCy's small English model with its NER "
                             "updated on customer-service messages (make builds it); or a spaCy package or folder.")
    classifier_cache: str | None = Field(
        None, description="Where trained guardrail classifiers are kept; empty: <home>/models. "
        "They retrain by themselves when their labelled data changes.")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    max_message_chars: int = Field(20000, ge=1, description="Requests over this are rejected with 413.")
    max_queued_turns: int = Field(32, ge=1, description="Chat turns waiting or running at once; one more is "
                                  "refused with 429 and Retry-After.")
    max_running_turns: int | None = Field(None, ge=1, description="Chat turns that run at once over the API; the "
                                          "rest wait, first come first served. Empty: one per CPU core.")
    user_turns_per_minute: int = Field(30, ge=1, description="A user's chat turns per minute; more are refused "
                                       "with 429 and Retry-After.")


class ReviewSettings(_Strict):
    claim_minutes: float = Field(15, gt=0, le=24 * 60,
                                 description="How long a reviewer's claim on a queue item holds before others may take it.")


class RetentionSettings(_Strict):
    days: float | None = Field(90, gt=0, description="Conversations whose newest turn is older than this are "
                               "erased, with everything that came from them; empty: kept until erased.")
    purge_every_minutes: float = Field(60, gt=0, description="How often the server runs the purge "
                                       "(expired vault entries too).")


class Settings(_Strict):
    home: Path = Field(Path(".helpdesk"), description="Data directory: database, vectors, models, adapters.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; empty: SQLite in the data directory.")
    ingest_samples: bool = Field(True, description="Ingest the shipped sample knowledge base on first start.")
    model: ModelSettings = ModelSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    server: ServerSettings = ServerSettings()
    review: ReviewSettings = ReviewSettings()
    retention: RetentionSettings = RetentionSettings()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'helpdesk.db'}"

    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def classifier_dir(self) -> Path:
        return Path(self.guardrails.classifier_cache) if self.guardrails.classifier_cache else self.models_dir

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn HELPDESK_A__B=v into {"a": {"b": v}}; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name}: {key} is not a section")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        # Keep strings that YAML would turn into other types where a path/name is meant.
        node[keys[-1]] = raw if isinstance(value, (dict, list)) else value
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(error: ValidationError, origin: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        msg = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{origin}: {key}: {msg}")
    return "; ".join(lines)


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `path` (or $HELPDESK_CONFIG, or ./helpdesk.yaml if present) and the environment."""
    environ = os.environ if environ is None else environ
    file_data: dict[str, Any] = {}
    config_path = Path(path) if path else Path(environ.get("HELPDESK_CONFIG", "helpdesk.yaml"))
    explicit = path is not None or "HELPDESK_CONFIG" in environ
    if config_path.exists():
        try:
            loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping of keys")
        file_data = loaded or {}
    elif explicit:
        raise ConfigError(f"settings file not found: {config_path}")
    env_data = _env_overrides(environ)
    origin = f"{config_path} / {ENV_PREFIX}* environment" if env_data else str(config_path)
    try:
        return Settings.model_validate(_merge(file_data, env_data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
