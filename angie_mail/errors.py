"""Configuration errors as values with a position, formatted in nginx's words in one place."""

from __future__ import annotations

# nginx formats a configuration error into a 1024-byte buffer (NGX_MAX_CONF_ERRSTR)
# before it appends " in FILE:LINE".
MAX_CONF_ERRSTR = 1024

# A few errno texts nginx prints through strerror(); only the ones our checks produce.
ERRNO_TEXT = {
    2: "No such file or directory",
    13: "Permission denied",
    21: "Is a directory",
    20: "Not a directory",
    24: "Too many open files",
    36: "File name too long",
    40: "Too many levels of symbolic links",
    98: "Address already in use",
    99: "Cannot assign requested address",
    110: "Connection timed out",
}


def _strerror(code: int) -> str:
    import os
    try:
        return os.strerror(code)        # the C library's text, as nginx's strerror()
    except ValueError:
        return "Unknown error"


def errno_suffix(err: OSError | int) -> str:
    """`` (2: No such file or directory)`` as nginx's ngx_log_errno() writes it."""
    if isinstance(err, OSError):
        code = err.errno or 0
        text = ERRNO_TEXT.get(code) or err.strerror or "Unknown error"
    else:
        code = err
        text = ERRNO_TEXT.get(code) or _strerror(code)
    return f" ({code}: {text})"


class ConfError(Exception):
    """A configuration error at a position.

    ``where`` selects how the position is appended, as in ngx_conf_log_error():
    ``"file"`` appends `` in FILE:LINE``, ``"cmdline"`` appends `` in command line``
    (the ``-g`` directives), ``"none"`` appends nothing (messages that embed their own
    position, e.g. ``no "listen" is defined for server in FILE:LINE``).
    """

    def __init__(self, message: str, file: str | None = None, line: int = 0,
                 col: int = 0, where: str = "file", level: str = "emerg",
                 kind: str = "error", start_line: int = 0, rule: str = ""):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.start_line = start_line or line    # where the statement starts (line is
        self.rule = rule                        # where nginx reports: its ";" or "{")
        self.where = where if file is not None or where != "file" else "none"
        self.level = level
        self.kind = kind

    def text(self) -> str:
        """The message as nginx prints it after ``[emerg] ``."""
        msg = self.message
        if len(msg.encode("utf-8", "surrogateescape")) > MAX_CONF_ERRSTR:
            msg = msg.encode("utf-8", "surrogateescape")[:MAX_CONF_ERRSTR].decode(
                "utf-8", "surrogateescape")
        if self.where == "file":
            return f"{msg} in {self.file}:{self.line}"
        if self.where == "cmdline":
            return f"{msg} in command line"
        return msg

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"ConfError({self.text()!r})"
