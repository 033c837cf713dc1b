"""Audio in and out: VAD, STT, TTS, codecs. Knows no dialogue."""
