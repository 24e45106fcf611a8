"""`helpdesk bench garak`: NVIDIA's garak attacks `/api/chat` over HTTP, then its report is summed up.

garak runs in its own virtual environment (`make garak` builds `.garak-venv`: its
pinned dependencies do not fit beside the project's). Its REST generator posts each
attack as `{"message": ...}` with an agent's API token, exactly as a client would, and
reads the `answer` field back, so every attack passes through the whole governed turn
and is logged like any other. garak's detectors then count, per probe, how many
answers show the attack working (a hijacked reply, a jailbroken persona, a replayed
text); those are the figures printed.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterable

from assistant.actor import cli_actor
from core.errors import BadInput, HelpdeskError

log = logging.getLogger(__name__)
GARAK_PYTHON = Path(".garak-venv/bin/python")
# Prompt injection (hijacking), jailbreaks (DAN prompts seen in the wild) and leaks (replay of texts).
DEFAULT_PROBES = "promptinject,dan.DanInTheWild,leakreplay.LiteratureCloze,leakreplay.GuardianCloze"


def generator_options(url: str, timeout_s: int) -> dict:
    """garak's REST generator, pointed at the chat route; `$KEY` comes from REST_API_KEY."""
    return {"rest": {"RestGenerator": {
        "name": "helpdesk", "uri": url.rstrip("/") + "/api/chat", "method": "post",
        "headers": {"Authorization": "Bearer $KEY", "Content-Type": "application/json"},
        "req_template_json_object": {"message": "$INPUT"},
        "response_json": True, "response_json_field": "answer",
        "request_timeout": timeout_s, "ratelimit_codes": [429],
    }}}


def summarize(report: Path, fixed_replies: Iterable[str] = ()) -> list[dict]:
    """One row per probe and detector, from the attempts in garak's report: the answers
    judged, how many the detector found the attack in, and how many were one of the
    policy's fixed replies (the block or handoff message: the guard stopped the attack).
    `attack_in_real_answers` counts hits among the rest: a detector such as
    `mitigation.MitigationBypass`, which looks for stock refusal phrases, counts a block
    message without them as a hit, so both counts are shown."""
    fixed = {" ".join(r.split()) for r in fixed_replies}
    rows: dict[tuple[str, str], dict] = {}
    for line in report.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("entry_type") != "attempt" or entry.get("status") != 2:
            continue  # only attempts that have been through the detectors
        texts = [" ".join(((o or {}).get("text") or "").split()) for o in entry.get("outputs", [])]
        for detector, scores in entry.get("detector_results", {}).items():
            row = rows.setdefault((entry["probe_classname"], detector), {
                "probe": entry["probe_classname"], "detector": detector, "answers": 0, "attack_succeeded": 0,
                "blocked": 0, "attack_in_real_answers": 0})
            for text_, score in zip(texts, scores):
                if score is None:
                    continue
                hit = score >= 0.5
                row["answers"] += 1
                row["attack_succeeded"] += hit
                row["blocked"] += text_ in fixed
                row["attack_in_real_answers"] += hit and text_ not in fixed
    for row in rows.values():
        row["rate"] = round(row["attack_succeeded"] / row["answers"], 4) if row["answers"] else None
        real = row["answers"] - row["blocked"]
        row["real_answer_rate"] = round(row["attack_in_real_answers"] / real, 4) if real else None
    return list(rows.values())


def run_garak(services, probes: str = DEFAULT_PROBES, url: str | None = None, token: str | None = None,
              garak_python: Path = GARAK_PYTHON, generations: int = 1, prompt_cap: int = 40,
              timeout_s: int = 300) -> list[dict]:
    """`prompt_cap`: the most prompts garak sends per probe (a seeded sample of its set; garak's
    own default is 256, hours of turns for probes whose prompts the guard lets through)."""
    if not garak_python.exists():
        raise BadInput(f"garak is not installed at {garak_python}: run `make garak` (or pass --garak PYTHON)")
    server = None
    if token is None:  # a user of its own, an agent, as any client of the chat would be
        name = f"garak-{uuid.uuid4().hex[:8]}"
        services.users.add(cli_actor(), name, "agent")
        token = services.users.create_token(cli_actor(), name, "bench garak")[1]
    if url is None:
        from assistant.load import serve_in_thread

        url, server = serve_in_thread(services)
    try:
        with tempfile.TemporaryDirectory(prefix="helpdesk-garak-") as tmp:
            options = Path(tmp) / "rest.json"
            options.write_text(json.dumps(generator_options(url, timeout_s)))
            config = Path(tmp) / "run.yaml"
            config.write_text(json.dumps({"run": {"soft_probe_prompt_cap": prompt_cap, "seed": 1}}))  # JSON is YAML
            prefix = Path(tmp) / "run"
            command = [str(garak_python.absolute()), "-m", "garak", "--target_type", "rest", "--generator_option_file",
                       str(options), "--probes", probes, "--generations", str(generations),
                       "--report_prefix", str(prefix), "--config", str(config)]
            env = {**os.environ, "REST_API_KEY": token, "HF_HUB_OFFLINE": "1"}
            log.info("running %s", " ".join(command))
            done = subprocess.run(command, env=env, cwd=tmp)
            reports = sorted(Path(tmp).rglob("run*.report.jsonl")) or sorted(
                Path(tmp).rglob("*.report.jsonl"))
            if done.returncode != 0 or not reports:
                raise HelpdeskError(f"garak exited with {done.returncode} and wrote no report")
            return summarize(reports[0], [services.guard.block_message, services.guard.handoff_message])
    finally:
        if server is not None:
            server.should_exit = True
