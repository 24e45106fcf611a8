"""The learning loop: datasets from feedback, LoRA training, the evaluation gate, the adapter registry."""
