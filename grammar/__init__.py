"""Lark grammars of angie-mail, installed as the package ``angie_mail.grammar``."""
