"""angie-mail: a mail proxy that reads Angie/nginx ``mail {}`` configuration."""

__version__ = "0.1.0"

# the nginx version whose mail behaviour angie-mail follows, through the Angie release
# its contract was taken from (Angie's own "nginx version:" line says the same): printed
# by -V and at start-up, where tools and test harnesses written for nginx look for it
NGINX_COMPAT = "1.27.2"
