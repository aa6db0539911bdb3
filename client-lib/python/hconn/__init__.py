"""hconn — Python clients of hconnd, the local HTTP/1.1 connection pool.

hconn.client    http.client's API over the daemon's Unix socket
hconn.urllib    a urllib.request handler (build_opener(HconnHandler()))
hconn.requests  a transport adapter for the requests library

Standard library only; the requests adapter needs requests itself.
"""

__all__ = ["client"]
