"""One check per module; importing this package registers them all."""
from guardrails.checks import (  # noqa: F401
    banned_topics,
    length,
    output_pii,
    prompt_injection,
    secrets,
    toxicity,
    unicode,
)
