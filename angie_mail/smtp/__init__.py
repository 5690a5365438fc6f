"""SMTP: the pre-authentication machine, the backend dialogue and the EHLO replies."""
