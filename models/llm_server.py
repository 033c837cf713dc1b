"""llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) over a GGUF model.

What `callbot llm serve` runs. llama-cpp-python's server has no setting for llama.cpp's
weight repacking (`--no-repack` in llama.cpp's own tools): its `Llama` class takes the
model parameters from `llama_model_default_params()` and never touches
`use_extra_bufts`. Repacking made the first tokens take 5-8 s on the 2-core CPU this
was measured on (0.15-0.5 s without), so the default parameters are wrapped to turn it off
before the model loads.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.errors import ModelError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
DEFAULT_CONTEXT = 4096
INSTALL_HINT = "pip install -e '.[llm]' (make setup builds llama-cpp-python once and caches the wheel)"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def disable_weight_repacking() -> None:
    """Make every model loaded from now on in this process use no extra (repacked) buffers."""
    try:
        import llama_cpp.llama_cpp as lib
    except ImportError as e:
        raise ModelError(f"llama-cpp-python is not installed ({e}): {INSTALL_HINT}") from e
    if getattr(lib.llama_model_default_params, "callbot_no_repack", False):
        return
    original = lib.llama_model_default_params

    def default_params_without_repacking():
        params = original()
        params.use_extra_bufts = False
        return params

    default_params_without_repacking.callbot_no_repack = True  # type: ignore[attr-defined]
    lib.llama_model_default_params = default_params_without_repacking


def serve(
    model: Path,
    *,
    alias: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    context: int = DEFAULT_CONTEXT,
    threads: int = 0,
    verbose: bool = False,
) -> None:
    """Load the model and serve /v1/chat/completions (streamed as SSE) until interrupted."""
    disable_weight_repacking()
    try:
        import uvicorn
        from llama_cpp.server.app import create_app
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError as e:
        raise ModelError(f"llama-cpp-python's server is not installed ({e}): {INSTALL_HINT}") from e
    os.environ.pop("CONFIG_FILE", None)  # create_app would read its settings from it instead
    threads = threads or cpu_cores()
    server_settings = ServerSettings(
        host=host,
        port=port,
        # Otherwise a second request cuts the stream of the one being generated (another
        # call's answer): requests wait for each other instead.
        interrupt_requests=False,
    )
    model_settings = ModelSettings(
        model=str(model),
        model_alias=alias,
        n_ctx=context,
        n_threads=threads,
        n_threads_batch=threads,
        # The server's default (True) computes the logits of every prompt token: only
        # needed for prompt logprobs, and costly on a CPU with a 151k-token vocabulary.
        logits_all=False,
        verbose=verbose,
    )
    app = create_app(server_settings=server_settings, model_settings=[model_settings])
    warm_up()
    uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning")


def warm_up() -> None:
    """One token generated before the server listens: the first request after loading was
    far slower than the next ones (13 s to the first token against 1-2 s with 2 threads on
    a busy 2-core machine; 1.3 s against 0.45 s with 1 thread), and it would be a caller's."""
    from llama_cpp.server import app as server_app

    llama = server_app._llama_proxy()  # the proxy create_app made: its default model, loaded
    llama.create_chat_completion([{"role": "system", "content": "Réponds en français."},
                                  {"role": "user", "content": "Bonjour"}], max_tokens=2)
