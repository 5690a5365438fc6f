"""Directive rows, one module per nginx/Angie module, in Angie's module order."""

from . import (auth_http, backend_tls, core, events, guard, imap, mail_core, pop3, proxy,
               realip, smtp, ssl)

MODULES = (core, mail_core, ssl, pop3, imap, smtp, auth_http, proxy, realip, events,
           backend_tls, guard)

ALL_ROWS = tuple(r for m in MODULES for r in m.ROWS)
