"""Protocol-independent, sans-I/O pieces shared by the POP3, IMAP and SMTP machines."""
