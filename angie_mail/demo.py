"""A one-command demo: angie-mail on conf/mail.conf with a tiny auth_http responder and
mailbox backend on loopback.

    python -m angie_mail.demo            # then, in another terminal:
    python -c "import poplib; m = poplib.POP3('127.0.0.1', 1110); m.user('alice'); \\
               print(m.pass_('secret')); print(m.list())"
    python -c "import imaplib; m = imaplib.IMAP4('127.0.0.1', 1143); \\
               print(m.login('alice', 'secret')); m.select(); print(m.fetch('1', 'BODY[]'))"
    python -c "import smtplib; s = smtplib.SMTP('127.0.0.1', 1587); \\
               s.login('alice', 'secret'); print(s.sendmail('alice@example.test', \\
               ['bob@example.test'], 'Subject: hi\\r\\n\\nhello\\r\\n'))"

Users: alice/secret and bob/secret (two messages each).  The auth responder on
127.0.0.1:18080 answers as an auth_http server does (wrong passwords get
``Auth-Status: Invalid login or password`` with ``Auth-Wait: 1``); the backends on
127.0.0.1:18110 (POP3), 127.0.0.1:18143 (IMAP) and 127.0.0.1:18025 (SMTP: it prints
what it receives) are minimal in-memory mail servers.  SMTP is served twice: as a
submission server on 1587 (AUTH) and as an MX front end on 1025 (``smtp_auth none``:
any sender, recipients @example.test only).
Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import sys

AUTH_PORT = 18080
BACKEND_PORT = 18110
IMAP_BACKEND_PORT = 18143
SMTP_BACKEND_PORT = 18025
USERS = {b"alice": b"secret", b"bob": b"secret"}


def _mailbox(user: bytes) -> list:
    who = user.decode()
    return [f"From: demo@example.test\r\nTo: {who}@example.test\r\nSubject: welcome\r\n\r\n"
            f"Hello {who}, this message came through angie-mail.\r\n".encode(),
            f"From: demo@example.test\r\nTo: {who}@example.test\r\nSubject: dots\r\n\r\n"
            f".a line starting with a dot\r\n.\r\nend\r\n".encode()]


async def auth_responder(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(l.split(b": ", 1) for l in head.split(b"\r\n")[1:] if b": " in l)
    user = fields.get(b"Auth-User", b"")
    method = fields.get(b"Auth-Method", b"")
    password = fields.get(b"Auth-Pass", b"")
    salt = fields.get(b"Auth-Salt", b"")
    good = USERS.get(user)
    if method == b"plain":
        ok = good is not None and password == good
    elif method == b"apop":
        ok = good is not None and password == hashlib.md5(salt + good).hexdigest().encode()
    elif method == b"cram-md5":        # what curl and most clients pick when offered
        ok = good is not None and hmac.compare_digest(
            password, hmac.new(good, salt, hashlib.md5).hexdigest().encode())
    elif method == b"none":            # the MX front end: the recipient decides
        ok = fields.get(b"Auth-SMTP-To", b"").lower().rstrip(b"> ").endswith(
            b"@example.test")
        good = b""
    else:
        ok = False
    if ok:
        port = {b"imap": IMAP_BACKEND_PORT, b"smtp": SMTP_BACKEND_PORT}.get(
            fields.get(b"Auth-Protocol"), BACKEND_PORT)
        resp = (b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
                b"Auth-Port: %d\r\n" % port
                + (b"Auth-Pass: %s\r\n" % good if good else b"") + b"\r\n")
    elif method == b"none":
        resp = (b"HTTP/1.0 200 OK\r\nAuth-Status: relay access denied\r\n"
                b"Auth-Error-Code: 550 5.7.1\r\nAuth-Wait: 0\r\n\r\n")
    else:
        resp = (b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n"
                b"Auth-Wait: 1\r\n\r\n")
    writer.write(resp)
    await writer.drain()
    writer.close()


async def backend(reader, writer):
    writer.write(b"+OK demo mailbox ready\r\n")
    user = None
    box = []
    deleted = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd, _, arg = line.strip().partition(b" ")
        cmd = cmd.upper()
        if cmd == b"USER":
            user = arg
            out = b"+OK\r\n"
        elif cmd == b"PASS":
            if USERS.get(user) == arg:
                box = _mailbox(user)
                out = b"+OK %s logged in\r\n" % user
            else:
                out = b"-ERR invalid password\r\n"
        elif cmd == b"STAT":
            live = [m for i, m in enumerate(box) if i not in deleted]
            out = b"+OK %d %d\r\n" % (len(live), sum(map(len, live)))
        elif cmd in (b"LIST", b"UIDL"):
            out = b"+OK\r\n" + b"".join(
                (b"%d %d\r\n" % (i + 1, len(m))) if cmd == b"LIST" else
                (b"%d msg%d\r\n" % (i + 1, i + 1))
                for i, m in enumerate(box) if i not in deleted) + b".\r\n"
        elif cmd in (b"RETR", b"TOP"):
            n = int(arg.split()[0]) - 1
            if 0 <= n < len(box) and n not in deleted:
                body = b"".join(b"." + l if l.startswith(b".") else l
                                for l in box[n].splitlines(keepends=True))
                out = b"+OK\r\n" + body + b".\r\n"
            else:
                out = b"-ERR no such message\r\n"
        elif cmd == b"DELE":
            deleted.add(int(arg) - 1)
            out = b"+OK deleted\r\n"
        elif cmd == b"QUIT":
            writer.write(b"+OK bye\r\n")
            break
        else:
            out = b"+OK\r\n"
        writer.write(out)
        await writer.drain()
    await writer.drain()
    writer.close()


async def imap_backend(reader, writer):
    """A minimal IMAP server: LOGIN (with the literals the proxy sends), SELECT INBOX,
    FETCH n BODY[]/RFC822, NOOP, LOGOUT."""
    writer.write(b"* OK demo mailbox ready\r\n")
    box = []

    async def word(line: bytes):
        line = line.rstrip(b"\r\n")
        if line.endswith(b"}"):                    # a literal follows
            head, _, n = line[:-1].rpartition(b"{")
            writer.write(b"+ go ahead\r\n")
            await writer.drain()
            return head, await reader.readexactly(int(n.rstrip(b"+")))
        return line, None
    while True:
        line = await reader.readline()
        if not line:
            break
        tag, _, rest = line.partition(b" ")
        cmd, _, arg = rest.strip().partition(b" ")
        cmd = cmd.upper()
        uid = cmd == b"UID"                         # UIDs are the message numbers here
        if uid:
            cmd, _, arg = arg.partition(b" ")
            cmd = cmd.upper()
        if cmd == b"LOGIN":
            head, user = await word(line)
            if user is None:
                user, _, passwd = arg.partition(b" ")
            else:
                head, passwd = await word(await reader.readline())
                if passwd is None:
                    passwd = head.strip()
                else:
                    await reader.readline()
            if USERS.get(user) == passwd:
                box = _mailbox(user)
                out = tag + b" OK LOGIN completed\r\n"
            else:
                out = tag + b" NO [AUTHENTICATIONFAILED] invalid password\r\n"
        elif cmd == b"SELECT" or cmd == b"EXAMINE":
            out = b"* %d EXISTS\r\n%s OK [READ-WRITE] SELECT completed\r\n" % (len(box), tag)
        elif cmd == b"FETCH":
            n = int(arg.split()[0]) - 1
            if 0 <= n < len(box):
                m = box[n]
                out = b"* %d FETCH (%sBODY[] {%d}\r\n%s)\r\n%s OK FETCH completed\r\n" % (
                    n + 1, b"UID %d " % (n + 1) if uid else b"", len(m), m, tag)
            else:
                out = tag + b" NO no such message\r\n"
        elif cmd == b"LOGOUT":
            writer.write(b"* BYE demo\r\n" + tag + b" OK LOGOUT completed\r\n")
            break
        elif cmd in (b"NOOP", b"CAPABILITY"):
            out = (b"* CAPABILITY IMAP4rev1\r\n" if cmd == b"CAPABILITY" else b"") + \
                tag + b" OK completed\r\n"
        else:
            out = tag + b" BAD unknown command\r\n"
        writer.write(out)
        await writer.drain()
    await writer.drain()
    writer.close()


async def smtp_backend(reader, writer):
    """A minimal SMTP server: what the proxy says before the relay (EHLO, XCLIENT, the
    client's EHLO, MAIL, RCPT), then DATA, printed as it arrived."""
    writer.write(b"220 demo smtp ready\r\n")
    rcpts = []
    while True:
        line = await reader.readline()
        if not line:
            break
        word = line.split(b" ", 1)[0].strip().upper()
        if word in (b"EHLO", b"HELO"):
            out = b"250 demo hello\r\n"
        elif word == b"XCLIENT":
            print(f"demo smtp: {line.strip().decode(errors='replace')}", flush=True)
            out = b"220 demo xclient ok\r\n"
        elif word == b"RCPT":
            rcpts.append(line.strip()[8:].decode(errors="replace"))
            out = b"250 2.1.5 ok\r\n"
        elif word == b"DATA":
            writer.write(b"354 go ahead\r\n")
            await writer.drain()
            size = 0
            while True:
                l = await reader.readline()
                if not l or l == b".\r\n":
                    break
                size += len(l)
            print(f"demo smtp: a message of {size} bytes for {', '.join(rcpts)}", flush=True)
            rcpts = []
            out = b"250 2.0.0 delivered to the demo\r\n"
        elif word == b"QUIT":
            writer.write(b"221 2.0.0 bye\r\n")
            break
        else:
            out = b"250 2.0.0 ok\r\n"
        writer.write(out)
        await writer.drain()
    await writer.drain()
    writer.close()


async def main(conf: str) -> int:
    a = await asyncio.start_server(auth_responder, "127.0.0.1", AUTH_PORT)
    b = await asyncio.start_server(backend, "127.0.0.1", BACKEND_PORT)
    i = await asyncio.start_server(imap_backend, "127.0.0.1", IMAP_BACKEND_PORT)
    m = await asyncio.start_server(smtp_backend, "127.0.0.1", SMTP_BACKEND_PORT)
    proxy = await asyncio.create_subprocess_exec(sys.executable, "-m", "angie_mail",
                                                 "-c", conf)
    print(f"demo: auth_http on 127.0.0.1:{AUTH_PORT}, backends on 127.0.0.1:{BACKEND_PORT} "
          f"(POP3), 127.0.0.1:{IMAP_BACKEND_PORT} (IMAP) and 127.0.0.1:{SMTP_BACKEND_PORT} "
          f"(SMTP), "
          f"angie-mail -c {conf} (pid {proxy.pid}); users alice/secret, bob/secret",
          flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    waiter = asyncio.ensure_future(proxy.wait())
    await asyncio.wait([stop, waiter], return_when=asyncio.FIRST_COMPLETED)
    if proxy.returncode is None:
        proxy.terminate()
        await proxy.wait()
    a.close()
    b.close()
    i.close()
    m.close()
    return proxy.returncode or 0


if __name__ == "__main__":
    conf = sys.argv[1] if len(sys.argv) > 1 else os.path.join("conf", "mail.conf")
    sys.exit(asyncio.run(main(conf)))
