#!/bin/sh
# Fails when the proto archive calls anything that does I/O or belongs to
# libevent or OpenSSL: the codecs must stay pure (bytes in, events out).
set -eu
archive=$1
undefined=$(nm -u "$archive" | awk '{print $2}' | sort -u)
bad=$(printf '%s\n' "$undefined" | grep -E \
  '^(event_|evbuffer_|bufferevent_|evdns_|evutil_|SSL_|TLS_|OPENSSL_|EVP_|BIO_|ERR_|X509_)|^(socket|connect|accept|accept4|bind|listen|read|write|send|sendmsg|recv|recvmsg|open|close|poll|epoll_wait|select|fopen|fwrite|fread|printf|fprintf|time|clock_gettime|gettimeofday)$' || true)
if [ -n "$bad" ]; then
  echo "proto/ must not use these symbols:" >&2
  printf '  %s\n' $bad >&2
  exit 1
fi
echo "proto archive: $(printf '%s\n' "$undefined" | wc -l) undefined symbols, none forbidden"
