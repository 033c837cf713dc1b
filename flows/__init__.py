"""The dialogue: flow engine, intent router, knowledge base. Knows no audio, no channel."""
