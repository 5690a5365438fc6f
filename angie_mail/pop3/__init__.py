"""POP3: the pre-authentication state machine (sans-IO) and its precomputed replies."""
