"""An exception escaping a callback becomes one error-log line without a traceback
and without the exception's text (which may quote client input)."""

from angie_mail.process.master import log_loop_error


class Log:
    def __init__(self):
        self.lines = []

    def log(self, level, message, *rest):
        self.lines.append((level, message))


def test_exception_is_one_line_without_its_text():
    log = Log()
    try:
        b"PASS hunter2".decode("ascii").encode("idna")[999]
    except Exception as e:
        exc = e
    log_loop_error(log, {"message": "poller callback failed", "exception": exc})
    assert len(log.lines) == 1
    level, message = log.lines[0]
    assert level == "alert"
    assert message.startswith("unexpected IndexError at test_loop_errors.py:")
    assert "hunter2" not in message and "\n" not in message


def test_message_without_exception():
    log = Log()
    log_loop_error(log, {"message": "something odd"})
    assert log.lines == [("alert", "something odd")]
