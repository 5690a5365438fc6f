"""The mail protocols the proxy serves, by the name a server's ``protocol`` takes."""

from __future__ import annotations

from .imap.protocol import PROTOCOL as IMAP
from .pop3.protocol import PROTOCOL as POP3
from .smtp.protocol import PROTOCOL as SMTP

PROTOCOLS = {"pop3": POP3, "imap": IMAP, "smtp": SMTP}
