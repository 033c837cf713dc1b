"""rasa-sdk actions, run by `callbot actions` in their own virtualenv (.venv-actions)."""
