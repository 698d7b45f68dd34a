"""real servers and stand-ins on loopback, for the tests and the benchmarks.

- `servers`: `RedisServer`, `PostgresServer` (real redis-server and PostgreSQL
  processes, restartable on the same port and data), `free_port`;
- `turbopuffer`: a server speaking turbopuffer's HTTP API for the real client;
- `http`: the lifecycle the loopback HTTP servers share;
- `asgi`: an httpx client on an app with its lifespan run;
- `catalog_rows`: a catalogue written into plyr.fm's schema in PostgreSQL;
- `dns`: a name server, some of whose names never answer;
- `silent_tls`: hosts that accept TCP and never finish TLS, and a route to them.

shipped (not under tests/) because `python -m bench` runs on them too; nothing
here is used by a production process.
"""
