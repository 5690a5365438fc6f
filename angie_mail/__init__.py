"""angie-mail: a mail proxy that reads Angie/nginx ``mail {}`` configuration."""

__version__ = "0.1.0"
