"""The shared bottom: errors, settings, the database engine and its migration runner, the embedder,
small helpers. Nothing here imports the app, the domain packages or the UI."""
