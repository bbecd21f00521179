"""The native HTTP/1.1 engine: trio for I/O, httptools (llhttp) for parsing, the ASGI app
called inline on each connection's task. The only importer of httptools.

    serve_native(app, limits, listeners, shutdown)    server.py: accept, lifespan, shutdown
      └── Connection.run()                            connection.py: one task per connection
            └── Exchange.run()                        exchange.py: one request: scope,
                                                      receive, send, response framing
                  └── RequestParser                   parser.py: bytes -> heads, bodies, refusals
"""

from oauthd.web.native.connection import Limits
from oauthd.web.native.server import open_listeners, serve_native

__all__ = ["Limits", "open_listeners", "serve_native"]
