"""The Gradio web UI. Callbacks only adapt UI events to the services."""
