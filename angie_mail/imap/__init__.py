"""IMAP: the pre-authentication machine, the backend login and the CAPABILITY replies."""
