"""One FrameProcessor per concern of the call pipeline."""
