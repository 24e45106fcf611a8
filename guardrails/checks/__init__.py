"""One check per module; importing this package registers them all."""
from guardrails.checks import (  # noqa: F401
    banned_topics,
    groundedness,
    injection_classifier,
    length,
    nanoguard,
    output_pii,
    prompt_injection,
    prompt_leak,
    secrets,
    sentiment,
    toxicity,
    unicode,
)
