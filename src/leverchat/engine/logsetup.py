"""Send library chatter (logging, warnings, progress bars) to the log file, never the terminal.

transformers and huggingface_hub log to stderr and draw tqdm bars ("Loading weights",
"Writing model shards") by default; ``warnings.warn`` prints to stderr too. Any of these would
draw over the TUI or mix into ``leverchat ask`` output. :func:`route_library_output_to_log`
routes them all into ``paths.log_file()``, a rotating file created on the first record.

torch and transformers are imported inside the function: importing this module stays cheap.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path

from leverchat import paths

_MAX_BYTES = 2 * 1024 * 1024
_BACKUPS = 3
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"
# Loggers that attach their own stderr handler (or would reach logging.lastResort, which prints
# WARNING and above to stderr when no handler is configured).
_LIBRARY_LOGGERS = ("transformers", "huggingface_hub", "accelerate", "torch", "gguf", "py.warnings")

_lock = threading.Lock()
_handler: _LazyRotatingFileHandler | None = None


class _LazyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler that creates the log folder and file on the first record only.

    If the log cannot be written (a read-only or unwritable folder, a full disk), logging
    says so once on stderr and stops: without this, each record printed a "--- Logging
    error ---" traceback (six of them, ~200 lines, around one `ask` answer).
    """

    off_reason: str | None = None

    def _open(self) -> io.TextIOWrapper:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        if self.off_reason is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)  # a bug in a log call: logging's own report
            return
        folder = Path(self.baseFilename).parent
        self.off_reason = f"{error.strerror or error}"
        if error.filename and Path(str(error.filename)) != Path(self.baseFilename):
            self.off_reason += f": {error.filename}"
        try:
            sys.stderr.write(
                f"leverchat: logging is off: cannot write the log file in {folder} "
                f"({self.off_reason}). Set LEVERCHAT_LOG_DIR to a writable folder.\n"
            )
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # no stderr either: nothing more to say


def route_library_output_to_log(level: int = logging.INFO) -> Path:
    """Route logging, warnings and progress bars into the log file; return its path.

    Idempotent and cheap on repeat calls. If the log location changed since the last call
    (tests point ``LEVERCHAT_LOG_DIR`` elsewhere), the handler moves to the new file.
    """
    global _handler
    # The tokenizers library prints a warning on stderr (from Rust, past any logging) when the
    # process forks after it used threads; without threads there is nothing to warn about.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log_path = paths.log_file()
    with _lock:
        if _handler is None or Path(_handler.baseFilename) != log_path.absolute():
            _install_handler(log_path, level)
        _silence_transformers()
    return log_path


def _install_handler(log_path: Path, level: int) -> None:
    global _handler
    handler = _LazyRotatingFileHandler(
        log_path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8", delay=True
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(level)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    _handler = handler
    # warnings.warn -> the "py.warnings" logger -> the root handler above.
    logging.captureWarnings(True)
    for name in _LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        _drop_terminal_handlers(library_logger)
        library_logger.propagate = True


def _drop_terminal_handlers(logger: logging.Logger) -> None:
    for existing in list(logger.handlers):
        if isinstance(existing, logging.StreamHandler) and not isinstance(
            existing, logging.FileHandler
        ):
            logger.removeHandler(existing)


def _silence_transformers() -> None:
    """Turn off the libraries' own stderr handlers and tqdm bars.

    transformers (re)adds its stderr handler lazily on first use, so this runs on every call.
    """
    import transformers.utils.logging as transformers_logging
    from huggingface_hub.utils.tqdm import disable_progress_bars

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    disable_progress_bars()
    # get_logger() configures transformers' root logger (adding its stderr handler) if that has
    # not happened yet; only then can the handler be removed for good.
    transformers_logging.get_logger()
    transformers_logging.disable_default_handler()
    transformers_logging.enable_propagation()
    _drop_terminal_handlers(logging.getLogger("transformers"))
    _drop_terminal_handlers(logging.getLogger("huggingface_hub"))
